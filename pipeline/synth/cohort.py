"""Balanced cohorts of synthetic studies with a manifest (CSV and JSON).

Study ``i`` of a cohort draws its options from balanced cycles: Bilsky grade (period
6), lesion type, collapse category, alignment, region and modality (each cycled and
deterministically shuffled by the cohort seed), so every value appears about equally
often and combinations vary. Study seeds are ``seed * 1000 + i``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.synth import config as C
from pipeline.synth.generator import ALIGNMENTS, COLLAPSE_KINDS, REGIONS, StudyOptions
from pipeline.synth.study import generate_study

MANIFEST_FIELDS = (
    "study", "seed", "modality", "region", "levels", "grade", "epidural_level", "index_level", "lesion_type",
    "collapse", "collapse_pct", "wedge", "alignment", "alignment_level", "alignment_value", "posterolateral",
    "series",
)  # fmt: skip


def cohort_plan(n: int, seed: int) -> list[tuple[int, StudyOptions, str]]:
    """(study seed, options, modality) for each of ``n`` studies, balanced and shuffled."""
    rng = np.random.default_rng(seed)

    def cycle(values: tuple[str, ...]) -> list[str]:
        reps = [values[i % len(values)] for i in range(n)]
        return [reps[i] for i in rng.permutation(n)]

    grades = [C.GRADES[i % len(C.GRADES)] for i in range(n)]
    lesions = cycle(("lytic", "blastic", "mixed"))
    collapses = cycle(COLLAPSE_KINDS)
    aligns = cycle(ALIGNMENTS)
    regions = cycle(tuple(REGIONS))
    modalities = cycle(("CT", "MR", "both"))
    out = []
    for i in range(n):
        lesion = lesions[i]
        if grades[i] == "0" and collapses[i] == "none" and i % 2 == 0:
            lesion = "none"  # some studies without any metastasis
        opts = StudyOptions(region=regions[i], grade=grades[i], lesion_type=lesion, collapse=collapses[i],
                            alignment=aligns[i])  # fmt: skip
        out.append((seed * 1000 + i, opts, modalities[i]))
    return out


def generate_cohort(n: int, seed: int, out: str | Path, *, orientation: str | None = None, ct_matrix: int = 256,
                    ct_max_slices: int = 200, mr_matrix: int = 320, write_dicom: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Write ``n`` studies under ``out/<study>/`` and ``out/manifest.csv`` / ``manifest.json``."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for i, (s, opts, modality) in enumerate(cohort_plan(n, seed)):
        name = f"synth_{i:04d}"
        res = generate_study(s, root / name, opts, modality=modality, orientation=orientation, ct_matrix=ct_matrix,
                             ct_max_slices=ct_max_slices, mr_matrix=mr_matrix, write_dicom=write_dicom)  # fmt: skip
        plan = res.plan.as_dict()
        row = {"study": name, "seed": s, "modality": modality, **plan,
               "levels": " ".join(res.truth["levels"]), "series": " ".join(x.name for x in res.series)}  # fmt: skip
        rows.append({k: row.get(k) for k in MANIFEST_FIELDS})
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(MANIFEST_FIELDS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    (root / "manifest.json").write_text(
        json.dumps({"n": n, "seed": seed, "studies": rows}, indent=1) + "\n"
    )
    return rows
