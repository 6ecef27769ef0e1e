"""Vertebra numbering on a synthetic cohort, measured on the model grid (fast to iterate).

For each study of a cohort written by ``eval_cohort.py generate``, the network runs once on
the series that numbers the levels (sagittal T2 for MR, the CT otherwise) and its outputs
on the model grid are cached (``--cache``); the numbering (``pipeline.segment.levels``
through ``derive_maps``) then runs on the cache, so a change to the numbering rules is
measured in seconds. Identification follows VerSe: a true vertebra (at least 2,000 mm^3 in
view) is identified when the predicted vertebra of its number has its centroid within
20 mm of the true one, and the true one is the nearest to it (the functions of
``eval_segment.py``; the sacrum is not counted).

    python benchmarks/eval_levels.py --cohort /tmp/cohortM --cache /tmp/levels-M
    python benchmarks/eval_levels.py --cohort /tmp/cohortM --cache /tmp/levels-M-slab \\
        --model models/spinemet-unet-2mm-slab

``--model`` runs that model itself; ``--route`` applies the thin-input routing of
``spinemet run`` instead (a sagittal MR slab goes to the card's thin-input model), as a
mixed cohort needs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_segment import centroids, identification  # noqa: E402  (the same VerSe rule)


def _series(study: Path) -> tuple[Path, str]:
    ct = study / "nifti" / "ct_axial.nii.gz"
    return (ct, "CT") if ct.exists() else (study / "nifti" / "t2_sag.nii.gz", "MR")


def cache_study(seg: object, study: Path, out: Path, route: bool = False) -> None:
    """Model-grid semantic map, level estimate and true vertebrae of one study."""
    from pipeline.io.nifti import read_nifti
    from pipeline.preprocess import resample_labels_nearest

    img, modality = _series(study)
    _, on_model, x = seg.model_grid_input(read_nifti(img, modality))  # type: ignore[attr-defined]
    if route:  # the thin-input routing of spinemet run (sagittal MR slabs)
        seg, _ = seg._runner_for(tuple(on_model.shape), modality)  # type: ignore[attr-defined]
        _, on_model, x = seg.model_grid_input(read_nifti(img, modality))  # type: ignore[attr-defined]
    sem, est = seg.split_logits(seg.logits(x))  # type: ignore[attr-defined]
    truth = read_nifti(study / "labels" / img.name.replace(".nii.gz", "") / "vertebrae.nii.gz")
    np.savez_compressed(
        out,
        sem=sem.numpy().astype(np.uint8),
        est=np.asarray(est, dtype=np.float32),
        affine=on_model.affine,
        truth=resample_labels_nearest(
            truth.array.astype(np.int16), truth.affine, on_model.affine, on_model.shape
        ),
    )


def invented(pred: np.ndarray, truth: np.ndarray, affine: np.ndarray) -> list[int]:
    """Level numbers predicted that the truth does not have (sacrum aside)."""
    t = centroids(truth, affine)
    return sorted(lv for lv in centroids(pred, affine) if lv not in t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--route", action="store_true", help="thin-input routing as spinemet run")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    import torch

    from pipeline.segment.builtin import BuiltinSegmenter
    from pipeline.segment.model import derive_maps

    torch.set_num_threads(a.threads)
    a.cache.mkdir(parents=True, exist_ok=True)
    seg = None
    studies = sorted(d for d in (a.cohort / "studies").glob("s*") if (d / "truth.json").exists())
    tot = cnt = inv = 0
    for d in studies:
        f = a.cache / f"{d.name}.npz"
        if not f.exists():
            seg = seg or BuiltinSegmenter.cached(a.model, "cpu")
            cache_study(seg, d, f, route=a.route)
        z = np.load(f)
        vert, *_, why = derive_maps(
            z["sem"], z["affine"], z["est"], split_waists=True, use_conus=_series(d)[1] == "MR"
        )
        ok, n = identification(vert, z["truth"], z["affine"])
        extra = invented(vert, z["truth"], z["affine"])
        tot, cnt, inv = tot + ok, cnt + n, inv + len(extra)
        if a.verbose:
            print(d.name, ok, n, extra, why, flush=True)
    res = {"studies": len(studies), "identified": tot, "counted": cnt, "rate": tot / max(cnt, 1),
           "invented_per_study": inv / max(len(studies), 1)}  # fmt: skip
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
