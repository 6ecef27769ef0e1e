"""Bilsky grading on the axial T2 (or the CT) of a synthetic cohort, fast to iterate.

``spinemet run`` grades epidural compression on the axial T2 series when a study has one,
on the built-in model's segmentation of that series. This benchmark separates the two
sources of error: for each study of a cohort written by ``eval_cohort.py generate
--modality MR`` it segments ``nifti/t2_ax.nii.gz`` once (the routing of ``spinemet run``
applies: ``get_segmenter("builtin")``) and caches the label maps (``--cache``); it then
grades (``extract_features``, the ``escc`` block of ``configs/features.yaml`` with
``--set`` overrides) both the cached segmentation and the true axial labels, and reports
worst-grade exact agreement, linearly weighted kappa and the confusions against
``truth.json``, and the Dice of the graded sac / cord / epidural labels against the true
axial labels (pooled over the cohort's voxels). A change to the grading tolerances is measured in a minute.

    python benchmarks/eval_escc.py --cohort /tmp/cohortM --cache /tmp/escc-M
    python benchmarks/eval_escc.py --cohort /tmp/cohortM --cache /tmp/escc-M \\
        --set cord_area_loss=0.25 --set cord_flattening_loss=0.3
    # CT studies (cohort written with --modality CT): the CT is graded (an estimate)
    python benchmarks/eval_escc.py --cohort /tmp/cohortD --cache /tmp/escc-D --series ct_axial \\
        --canal-model models/spinemet-canal-ct
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _modality(series: str) -> str:
    return "CT" if series.startswith("ct") else "MR"


def cache_study(study: Path, out: Path, threads: int, series: str = "t2_ax") -> None:
    """Built-in segmentation of the study's ``series`` (NIfTI) on its own grid."""
    import torch

    from pipeline.io.nifti import read_nifti
    from pipeline.segment import get_segmenter

    torch.set_num_threads(threads)
    vol = read_nifti(study / "nifti" / f"{series}.nii.gz", _modality(series))
    seg = get_segmenter("builtin", device="cpu").segment(vol)
    np.savez_compressed(
        out,
        vertebrae=np.asarray(seg.vertebrae.array, dtype=np.int16),
        structures=np.asarray(seg.structures.array, dtype=np.uint8),
        parts=np.asarray(seg.parts.array, dtype=np.uint8),
    )


def grade(
    study: Path,
    maps: dict[str, np.ndarray],
    cfg: dict[str, Any],
    refiner: Any = None,
    series: str = "t2_ax",
) -> tuple[str, Any, np.ndarray]:
    """Worst Bilsky grade (``"0"`` when none), the ESCC result and the structures graded.

    ``refiner`` (a :class:`pipeline.segment.canal.CanalRefiner`) re-segments the canal of
    ``maps`` first, as ``spinemet run`` does with the card's canal model.
    """
    from pipeline.features import extract_features
    from pipeline.io.nifti import read_nifti

    vol = read_nifti(study / "nifti" / f"{series}.nii.gz", _modality(series))
    if refiner is not None:
        maps = {**maps, "structures": refiner.refine(vol.array, vol.affine, maps["structures"])[0]}
    f = extract_features(
        vol, maps["vertebrae"], maps["structures"], maps["parts"],
        escc_source="mr_axial_t2" if series == "t2_ax" else series, config=cfg,
    )  # fmt: skip
    return (f.escc.worst_grade or "0"), f.escc, maps["structures"]


def truth_maps(study: Path, series: str = "t2_ax") -> dict[str, np.ndarray]:
    """The generator's label maps of ``series``."""
    from pipeline.io.nifti import read_nifti

    d = study / "labels" / series
    return {k: read_nifti(d / f"{k}.nii.gz").array for k in ("vertebrae", "structures", "parts")}


CANAL = {"sac": 1, "cord": 2, "epidural": 3}  # pipeline.labels codes


def overlap(pred: np.ndarray, truth: np.ndarray, acc: dict[str, list[int]]) -> None:
    """Add one study's intersections and sizes of the canal labels to ``acc``."""
    for name, code in CANAL.items():
        p, t = pred == code, truth == code
        a = acc.setdefault(name, [0, 0])
        a[0] += int((p & t).sum())
        a[1] += int(p.sum() + t.sum())


def _value(s: str) -> Any:
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        return s


def summary(truth: list[str], pred: list[str]) -> dict[str, Any]:
    """Exact agreement, weighted kappa, low/high agreement and confusions (truth, pred)."""
    from pipeline.evaluate import weighted_kappa

    high = {"2", "3"}
    n = len(truth)
    conf = collections.Counter((t, p) for t, p in zip(truth, pred, strict=True) if t != p)
    return {
        "n": n,
        "exact": sum(t == p for t, p in zip(truth, pred, strict=True)) / max(n, 1),
        "kappa": weighted_kappa(truth, pred),
        "low_high": sum((t in high) == (p in high) for t, p in zip(truth, pred, strict=True))
        / max(n, 1),
        "confusions": {f"{t}->{p}": c for (t, p), c in conf.most_common()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of the escc block of configs/features.yaml")  # fmt: skip
    ap.add_argument("--no-truth", action="store_true", help="skip grading the true labels")
    ap.add_argument("--canal-model", default=None,
                    help="canal refinement model (folder) applied to the cached segmentation")  # fmt: skip
    ap.add_argument("--gate-mm", type=float, default=None,
                    help="override the canal model's coarse-tumour gate (mm; -1: no gate)")  # fmt: skip
    ap.add_argument("--series", default="t2_ax",
                    help="the NIfTI series graded: t2_ax (MR) or ct_axial (CT)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    from pipeline.features.extract import load_config

    over = dict(kv.split("=", 1) for kv in a.set)
    cfg = load_config(overrides={"escc": {k: _value(v) for k, v in over.items()}})
    a.cache.mkdir(parents=True, exist_ok=True)
    refiner = None
    if a.canal_model:
        import torch

        from pipeline.segment.canal import CanalRefiner

        torch.set_num_threads(a.threads)
        refiner = CanalRefiner(a.canal_model, torch.device("cpu"))
        if a.gate_mm is not None:
            refiner.tumour_gate_mm = None if a.gate_mm < 0 else a.gate_mm
    studies = sorted(
        d
        for d in (a.cohort / "studies").glob("s*")
        if (d / "truth.json").exists() and (d / "nifti" / f"{a.series}.nii.gz").exists()
    )
    t_all: list[str] = []
    acc: dict[str, list[int]] = {}
    p_model: list[str] = []
    p_truth: list[str] = []
    for d in studies:
        f = a.cache / f"{d.name}.npz"
        if not f.exists():
            cache_study(d, f, a.threads, a.series)
        truth = json.loads((d / "truth.json").read_text())["escc"]["worst_grade"] or "0"
        g, e, graded = grade(d, dict(np.load(f)), cfg, refiner, a.series)
        t_all.append(truth)
        p_model.append(g)
        if not a.no_truth:
            true_maps = truth_maps(d, a.series)
            overlap(graded, true_maps["structures"], acc)
            p_truth.append(grade(d, true_maps, cfg, series=a.series)[0])
        if a.verbose and g != truth:
            ws = e.worst_slice
            print(d.name, truth, "->", g, e.worst_level, None if ws is None else ws.__dict__,
                  flush=True)  # fmt: skip
    res = {
        "escc": {k: cfg["escc"][k] for k in over},
        "canal_model": a.canal_model,
        "gate_mm": None if refiner is None else refiner.tumour_gate_mm,
        "model": summary(t_all, p_model),
    }
    if p_truth:
        res["true_labels"] = summary(t_all, p_truth)
        # Dice of the graded canal labels against the true axial labels, pooled over studies
        res["dice_pooled"] = {k: round(2 * i / n, 4) if n else None for k, (i, n) in acc.items()}
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
