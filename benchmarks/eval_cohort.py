"""Held-out synthetic cohort -> ``spinemet run`` -> ``spinemet evaluate``.

Usage::

    python benchmarks/eval_cohort.py generate --out /tmp/cohort --n 60 --seed 7000000
    python benchmarks/eval_cohort.py run --cohort /tmp/cohort --segmenter labels
    python benchmarks/eval_cohort.py run --cohort /tmp/cohort --segmenter builtin
    # MR (sagittal + axial T2) as DICOM: levels on the sagittal, Bilsky on the axial T2
    python benchmarks/eval_cohort.py generate --out /tmp/mr --n 60 --seed 7700000 \
        --modality MR --dicom
    spinemet evaluate /tmp/cohort/reports-labels /tmp/cohort/studies

Seeds from 7,000,000 up are never used by training (which draws from its own range).
Studies are balanced by cycling the Bilsky grade, lesion type, collapse, alignment and
posterolateral categories with co-prime periods. Resumable: existing studies and reports
are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

GRADES = ("0", "1a", "1b", "1c", "2", "3")
LESIONS = ("lytic", "blastic", "mixed", "lytic", "blastic")
COLLAPSE = ("none", "lt50", "gt50", "involved_gt50")
ALIGN = ("normal", "translation", "kyphosis", "scoliosis", "normal", "translation", "normal")
POSTERO = ("none", "unilateral", "bilateral")


def generate(out: Path, n: int, seed: int, matrix: int, modality: str, dicom: bool = False) -> None:
    from pipeline.synth.generator import StudyOptions
    from pipeline.synth.study import generate_study

    (out / "studies").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        s = seed + k
        d = out / "studies" / f"s{s}"
        if (d / "truth.json").exists():
            continue
        opts = StudyOptions(
            grade=GRADES[k % 6],
            lesion_type=LESIONS[k % 5],
            collapse=COLLAPSE[k % 4],
            alignment=ALIGN[k % 7],
            posterolateral=POSTERO[k % 3],
        )
        t = time.perf_counter()
        generate_study(
            s, d, opts, modality=modality, orientation=None, ct_matrix=matrix, write_dicom=dicom
        )
        print(f"s{s} {time.perf_counter() - t:.1f}s", flush=True)


def run(cohort: Path, segmenter: str, device: str, model: str | None = None, tag: str = "") -> None:
    from pipeline.run import run_study

    rep = cohort / f"reports-{segmenter}{tag}"
    for d in sorted((cohort / "studies").glob("s*")):
        if (rep / d.name / "report.json").exists() or not (d / "truth.json").exists():
            continue
        img = d / "nifti" / "ct_axial.nii.gz"
        modality = "CT"
        if not img.exists():
            img, modality = d / "nifti" / "t2_sag.nii.gz", "MR"
        labels = d / "labels" / img.name.replace(".nii.gz", "")
        # A study written as DICOM runs as a radiologist's would: every series loaded,
        # levels on the sagittal MR, Bilsky on the axial T2 when there is one.
        src = d / "dicom" if segmenter == "builtin" and (d / "dicom").is_dir() else img
        t = time.perf_counter()
        res = run_study(
            src,
            rep,
            modality=modality if src == img else None,
            segmenter=segmenter,
            model=model,
            labels=labels if segmenter == "labels" else None,
            device=device,
            progress=None,
            write_images=False,
        )
        # outputs are written to rep/<stem>; move under the study's name
        target = rep / d.name
        if res.out_dir != target:
            if target.exists():
                for f in target.iterdir():
                    f.unlink()
                target.rmdir()
            res.out_dir.rename(target)
        print(f"{d.name} {time.perf_counter() - t:.1f}s", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--n", type=int, default=60)
    g.add_argument("--seed", type=int, default=7_000_000)
    g.add_argument("--matrix", type=int, default=192)
    g.add_argument("--modality", default="CT", help="CT, MR (T2 sagittal + axial) or both")
    g.add_argument("--dicom", action="store_true", help="also write the DICOM series")
    r = sub.add_parser("run")
    r.add_argument("--cohort", type=Path, required=True)
    r.add_argument("--segmenter", default="labels")
    r.add_argument("--device", default="cpu")
    r.add_argument("--model", help="built-in model folder or name (default: the shipped one)")
    r.add_argument("--tag", default="", help="suffix of the reports folder (reports-SEGMENTER-TAG)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    if a.cmd == "generate":
        generate(a.out, a.n, a.seed, a.matrix, a.modality, a.dicom)
    else:
        run(a.cohort, a.segmenter, a.device, a.model, f"-{a.tag}" if a.tag else "")
    json.dumps({})
    return 0


if __name__ == "__main__":
    sys.exit(main())
