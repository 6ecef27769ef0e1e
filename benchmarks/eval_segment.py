"""Segmentation accuracy of a backend on a held-out synthetic cohort and on real scans.

Synthetic: pairs from ``pipeline.synth.make_training_pair`` with seeds never used in
training (default 700000+), domain randomisation OFF (realistic CT in HU / MR T1, T2,
STIR), on acquisition-like grids (CT axial 0.8 x 0.8 x 2 mm, MR sagittal 4 x 0.9 x 0.9 mm),
so the model's resampling is part of what is measured. Dice on the source grid (MONAI
``compute_dice``):

* ``vertebrae``: bone of all vertebrae (level numbers ignored); ``vertebrae_per_level``:
  mean over true levels of the Dice of that level number;
* ``sac``, ``cord``: structure codes 1 and 2; ``epidural``, ``lytic``, ``blastic``:
  codes 3, 4, 5, averaged over the cases that contain them (``lesion`` = mean of the three);
* level identification rate (VerSe): a true vertebra counts as identified when the
  predicted centroid of its level exists, lies within 20 mm of the true centroid, and the
  closest true centroid to it is that level's. Vertebrae with < 2,000 mm^3 in view are
  not counted (cut by the field of view).

Real: T11, T12 and cord of ``ts-example-ct-dicom`` against its TotalSegmentator labels
(imported with the ``labels`` backend) and the cord and canal of the tptbox MR crop.

``--refine-canal`` applies the canal refinement ``spinemet run`` applies to the series it
grades Bilsky on (``BuiltinSegmenter.refine_canal``: axial series only, the model the main
card names for the modality), so the sac / cord / epidural figures are those of the graded
series. ``--refine-lesions`` applies the bone-lesion refinement ``spinemet run`` applies to
every CT and sagittal MR (``BuiltinSegmenter.refine_lesions``), so the lytic / blastic
figures, and the vertebra outline the models' cards redraw (``bone_reshape``), are those
the features are measured on.

Usage::

    python benchmarks/eval_segment.py --synthetic 16 --real --out runs/eval.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Binary Dice with MONAI (NaN when both are empty)."""
    from monai.metrics import compute_dice

    p = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32))[None, None]
    r = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32))[None, None]
    if not r.any() and not p.any():
        return float("nan")
    return float(compute_dice(p, r, include_background=True, ignore_empty=False)[0, 0])


def centroids(vert: np.ndarray, affine: np.ndarray, min_mm3: float = 0.0) -> dict[int, np.ndarray]:
    vv = abs(np.linalg.det(affine[:3, :3]))
    out = {}
    for v in np.unique(vert):
        if v <= 0 or v == 26:
            continue
        idx = np.argwhere(vert == v)
        if len(idx) * vv >= min_mm3:
            out[int(v)] = idx.mean(0) @ affine[:3, :3].T + affine[:3, 3]
    return out


def identification(pred: np.ndarray, ref: np.ndarray, affine: np.ndarray) -> tuple[int, int]:
    """(identified, counted) true vertebrae, VerSe definition."""
    t = centroids(ref, affine, 2000.0)
    t_all = centroids(ref, affine)
    p = centroids(pred, affine)
    ok = 0
    for level, c in t.items():
        if level not in p:
            continue
        d = np.linalg.norm(p[level] - c)
        closest = min(t_all, key=lambda v: np.linalg.norm(t_all[v] - p[level]))
        ok += int(d <= 20.0 and closest == level)
    return ok, len(t)


def synthetic_cohort(n: int, seed0: int) -> Any:
    from pipeline.synth import make_training_pair

    for k in range(n):
        seed = seed0 + k
        if k % 2 == 0:
            vol, lab = make_training_pair(
                seed,
                "CT",
                domain_randomised=False,
                spacing_mm=(0.8, 0.8, 2.0),
                shape=(240, 240, 100),
            )
        else:
            vol, lab = make_training_pair(
                seed,
                "MR",
                domain_randomised=False,
                spacing_mm=(4.0, 0.9, 0.9),
                shape=(40, 210, 220),
            )
        yield seed, vol, lab


def _segment(seg: Any, vol: Any, refine: Any) -> Any:
    """Segment, then the refinements named in ``refine`` ("canal", "lesions"; the lesions
    of a CT or a sagittal MR where the card names a model for it, as ``spinemet run``)."""
    out = seg.segment(vol)
    if "lesions" in refine:
        out = seg.refine_lesions(vol, out)
    return seg.refine_canal(vol, out) if "canal" in refine else out


def eval_synthetic(seg: Any, n: int, seed0: int, refine: Any = ()) -> dict[str, Any]:
    rows = []
    for seed, vol, lab in synthetic_cohort(n, seed0):
        t = time.perf_counter()
        out = _segment(seg, vol, refine)
        dt = time.perf_counter() - t
        rv, rs = lab["vertebrae"].array, lab["structures"].array
        pv, ps = out.vertebrae.array, out.structures.array
        row: dict[str, Any] = {
            "seed": seed,
            "modality": vol.modality,
            "model": out.meta.get("model"),
            "canal_refine": (out.meta.get("canal_refine") or {}).get("model"),
            "lesion_refine": (out.meta.get("lesion_refine") or {}).get("model"),
            "contrast": vol.meta.get("contrast"),
            "seconds": round(dt, 2),
            "levels_true": sorted(int(v) for v in np.unique(rv) if v),
            "levels_pred": sorted(int(v) for v in np.unique(pv) if v),
        }
        row["vertebrae"] = dice(pv > 0, rv > 0)
        per = [dice(pv == v, rv == v) for v in np.unique(rv) if v > 0]
        row["vertebrae_per_level"] = float(np.mean(per)) if per else float("nan")
        for name, code in (
            ("sac", 1),
            ("cord", 2),
            ("epidural", 3),
            ("lytic", 4),
            ("blastic", 5),
            ("disc", 6),
        ):
            row[name] = dice(ps == code, rs == code) if (rs == code).any() else float("nan")
        row["identified"], row["counted"] = identification(pv, rv, vol.affine)
        rows.append(row)
        print(
            json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}),
            flush=True,
        )
    summary: dict[str, Any] = {}
    for key in (
        "vertebrae",
        "vertebrae_per_level",
        "sac",
        "cord",
        "epidural",
        "lytic",
        "blastic",
        "disc",
    ):
        vals = [r[key] for r in rows if not np.isnan(r[key])]
        summary[key] = round(float(np.mean(vals)), 4) if vals else None
        summary[f"{key}_n"] = len(vals)
    les = [summary[k] for k in ("epidural", "lytic", "blastic") if summary[k] is not None]
    summary["lesion_mean"] = round(float(np.mean(les)), 4) if les else None
    ident = sum(r["identified"] for r in rows)
    counted = sum(r["counted"] for r in rows)
    summary["identification_rate"] = round(ident / counted, 4) if counted else None
    summary["identified_counted"] = [ident, counted]
    summary["median_seconds"] = float(np.median([r["seconds"] for r in rows]))
    return {"summary": summary, "cases": rows}


def eval_real(seg: Any, refine: Any = ()) -> dict[str, Any]:
    from pipeline.io import open_study, read_nifti
    from pipeline.segment import import_labels

    res: dict[str, Any] = {}
    ct_dir = DATA / "ts-example-ct-dicom"
    if ct_dir.exists():
        ct = open_study(ct_dir / "dicom").primary
        ref = import_labels(ct_dir / "example_seg_dicom_totalseg_fast.nii.gz", ct)
        out = _segment(seg, ct, refine)
        rv, pv = ref.vertebrae.array, out.vertebrae.array
        res["ts-example-ct-dicom"] = {
            "T11": dice(pv == 18, rv == 18),
            "T12": dice(pv == 19, rv == 19),
            "T11_T12_bone_ignoring_numbers": dice(pv > 0, rv > 0),
            "cord": dice(out.structures.array == 2, ref.structures.array == 2),
            "levels_pred": out.levels,
            "model": out.meta.get("model"),
            "numbering": out.meta.get("numbering"),
            "seconds": out.meta.get("timings"),
        }
    mr_dir = DATA / "tptbox-vertebra-crops" / "mri"
    if mr_dir.exists():
        import nibabel as nib

        from pipeline.io.volume import LPS_TO_RAS
        from pipeline.preprocess import resample_labels_nearest

        img = read_nifti(mr_dir / "sub-mri_label-6_T2w.nii.gz", "MR")
        sub = nib.load(str(mr_dir / "sub-mri_seg-subreg_label-6_msk.nii.gz"))
        subarr = resample_labels_nearest(
            np.rint(np.asarray(sub.dataobj)).astype(np.int16),
            LPS_TO_RAS @ sub.affine,
            img.affine,
            img.shape,
        )
        out = _segment(seg, img, refine)
        ps = out.structures.array
        res["tptbox-mr-crop"] = {
            "cord": dice(ps == 2, subarr == 60),
            "canal_incl_cord": dice(np.isin(ps, (1, 2)), np.isin(subarr, (60, 61))),
            "canal_csf_only": dice(ps == 1, subarr == 61),
            "vertebrae_bone": dice(
                out.vertebrae.array > 0, np.isin(subarr, (41, 42, 43, 44, 45, 46, 47, 48, 49, 50))
            ),
            "model": out.meta.get("model"),
        }
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backend", default="builtin")
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--synthetic", type=int, default=0, help="number of held-out synthetic cases")
    ap.add_argument("--seed0", type=int, default=700000)
    ap.add_argument("--real", action="store_true")
    ap.add_argument(
        "--refine-canal",
        action="store_true",
        help="apply the canal refinement of the graded series (axial only)",
    )
    ap.add_argument("--refine-lesions", action="store_true",
                    help="apply the bone-lesion refinement of CT series (axial only)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--write-card", action="store_true", help="record the figures in the model card"
    )
    a = ap.parse_args(argv)
    refine = {n for n, on in (("canal", a.refine_canal), ("lesions", a.refine_lesions)) if on}
    torch.set_num_threads(a.threads)
    from pipeline.segment import get_segmenter

    seg = get_segmenter(a.backend, device=a.device, model=a.model)
    report: dict[str, Any] = {
        "backend": a.backend,
        "model": getattr(getattr(seg, "card", None), "name", None),
    }
    if a.synthetic:
        report["synthetic"] = eval_synthetic(seg, a.synthetic, a.seed0, refine)
        print(json.dumps(report["synthetic"]["summary"], indent=1))
    if a.real:
        report["real"] = eval_real(seg, refine)
        print(json.dumps(report["real"], indent=1, default=str))
    if a.write_card and a.backend == "builtin":
        import yaml

        card_path = seg.card.folder / "card.yaml"  # type: ignore[attr-defined]
        card = yaml.safe_load(card_path.read_text())
        metrics = card.get("metrics") or {}
        cmd = "python benchmarks/eval_segment.py " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        if "synthetic" in report:
            metrics["held_out_synthetic"] = {
                "command": cmd,
                **report["synthetic"]["summary"],
                "seeds": f"{a.seed0}..{a.seed0 + a.synthetic - 1}",
            }
        if "real" in report:
            metrics["real_scans"] = {
                "command": cmd,
                **json.loads(json.dumps(report["real"], default=str)),
            }
        card["metrics"] = metrics
        card_path.write_text(yaml.safe_dump(card, sort_keys=False))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
