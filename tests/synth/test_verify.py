"""Truth agrees with what label maps alone show (small CI version of the cohort check).

The 60-study run is ``benchmarks/check_synth_cohort.py``.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from pipeline.synth import config as C
from pipeline.synth import verify as V
from pipeline.synth.acquisition import acquire_labels, ct_axial, mr_axial
from pipeline.synth.generator import StudyOptions, random_world
from pipeline.synth.truth import build_truth


@pytest.mark.parametrize(
    "grade,region", [(g, "cervical" if i % 2 else "thoracic") for i, g in enumerate(C.GRADES)]
)
def test_bilsky_grade_measured_on_axial_mr(grade, region):
    # A stable seed: hash() of a str changes per process (PYTHONHASHSEED).
    rng = np.random.default_rng(zlib.crc32(f"{grade}-{region}".encode()))
    world, plan = random_world(rng, StudyOptions(grade=grade, region=region, lesion_type="lytic"))
    truth = build_truth(world, plan)
    level = plan.epidural_level or plan.index_level
    s = mr_axial(world, rng, level, orientation=str(rng.choice(["standard", "flipped", "oblique"])))
    lab = acquire_labels(world, s)
    m = V.measure_escc(lab["structures"], s.affine)
    assert m.grade == truth["escc"]["worst_grade"] == grade, m


@pytest.mark.parametrize(
    "opts",
    [
        StudyOptions(
            region="thoracolumbar", collapse="gt50", wedge=True, alignment="translation", grade="0"
        ),
        StudyOptions(
            region="lumbar", collapse="lt50", wedge=False, alignment="kyphosis", grade="0"
        ),
    ],
)
def test_collapse_translation_angulation_from_vertebra_masks(opts):
    rng = np.random.default_rng(77)
    world, plan = random_world(rng, opts)
    truth = {v["label"]: v for v in build_truth(world, plan)["vertebrae"]}
    s = ct_axial(world, rng, orientation="oblique")
    lab = acquire_labels(world, s)
    vert, parts = lab["vertebrae"], lab["parts"]
    nums = plan.numbers
    i = nums.index(plan.index_level)
    col = V.measure_collapse(vert, parts, s.affine, plan.index_level, nums[i - 1], nums[i + 1])
    assert col is not None
    assert abs(col - truth[plan.index_level]["measurements"]["collapse_pct"]) <= 8.0
    a = plan.alignment_level
    j = nums.index(a)
    if plan.alignment == "translation":
        tr = V.measure_translation(vert, parts, s.affine, a, nums[j + 1], nums[j + 2])
        assert tr is not None and abs(tr - truth[a]["measurements"]["translation_mm"]) <= 2.0
        assert truth[a]["sins"]["alignment"] == "subluxation_translation"
    else:
        fa = V.focal_angles(vert, parts, s.affine, nums, a)
        assert fa is not None and abs(fa[0] - truth[a]["measurements"]["kyphosis_deg"]) <= 4.0
        assert truth[a]["sins"]["alignment"] == "de_novo_deformity"
