"""End-to-end ``spinemet run`` timing on a CT of about 512 x 512 x 200.

Usage::

    python benchmarks/bench_run.py [--study DIR] [--segmenter builtin|labels] [--repeat 2]

Without ``--study`` a synthetic CT study (seed 7300000, 512 matrix, up to 200 slices) is
generated once into ``/tmp/spinemet-bench-512``. Prints the per-stage timings of
``run.json`` (the median over repeats) and whether the total is under the 60 s target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

TARGET_S = 60.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", type=Path, default=Path("/tmp/spinemet-bench-512"))
    ap.add_argument("--segmenter", default="labels", choices=["labels", "builtin"])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    d = a.study
    if not (d / "nifti" / "ct_axial.nii.gz").exists():
        from pipeline.synth.study import generate_study

        t = time.perf_counter()
        generate_study(
            7_300_000, d, modality="CT", ct_matrix=512, ct_max_slices=200, write_dicom=True
        )
        print(f"generated {d} in {time.perf_counter() - t:.0f} s", flush=True)
    from pipeline.run import run_study

    src = d / "dicom"
    series = sorted(p for p in src.iterdir() if p.is_dir()) if src.exists() else []
    path = series[0] if series else d / "nifti" / "ct_axial.nii.gz"
    runs = []
    for _ in range(a.repeat):
        res = run_study(
            path,
            Path("/tmp/spinemet-bench-out"),
            modality=None if series else "CT",
            segmenter=a.segmenter,
            labels=d / "labels" / "ct_axial" if a.segmenter == "labels" else None,
            device=a.device,
            progress=None,
        )
        runs.append(res.run_info)
    shape = runs[0].get("options", {})
    rep = json.loads((res.out_dir / "report.json").read_text())
    print(
        f"input: {path} shape {rep['study'].get('shape')} spacing {rep['study'].get('spacing_mm')} ({shape})"
    )
    stages = runs[0]["timings_s"].keys()
    for s in stages:
        print(f"  {s:10s} {statistics.median(r['timings_s'][s] for r in runs):7.2f} s")
    total = statistics.median(r["total_s"] for r in runs)
    print(
        f"  {'total':10s} {total:7.2f} s  (target < {TARGET_S:.0f} s: {'met' if total < TARGET_S else 'NOT met'})"
    )
    print(f"device: {runs[0]['device']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
