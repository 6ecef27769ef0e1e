"""Benchmark: render a 256 x 256 x 200 CT study with its truth (issue 4 target: < 10 s median).

Times, per repeat: drawing the world and its truth.json document (analytic integrals),
and sampling the CT image (HU, partial volume, PSF, noise) plus the three label maps on
a 256 x 256 x 200 axial grid (0.8 mm pixels, 1.5 mm slices). Writing files is timed
separately (DICOM slices + NIfTI). The machine's 2 cores are shared, so the load average
is printed next to the result. Usage: ``.venv/bin/python benchmarks/bench_synth.py [repeats]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.synth.acquisition import acquire, ct_axial
from pipeline.synth.dicom_writer import write_series
from pipeline.synth.generator import StudyOptions, random_world
from pipeline.synth.study import write_nifti_deterministic
from pipeline.synth.truth import build_truth


def one(seed: int, tmp: Path) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    c0 = time.process_time()
    rng = np.random.default_rng(seed)
    world, plan = random_world(
        rng, StudyOptions(region="thoracolumbar", grade="2", collapse="gt50")
    )
    build_truth(world, plan)
    s = ct_axial(
        world, rng, matrix=256, pixel=0.8, slice_mm=1.5, n_slices=200, centre_level=plan.index_level
    )
    assert s.shape == (256, 256, 200), s.shape
    img, labels = acquire(world, s, rng)
    t1 = time.perf_counter()
    cpu = time.process_time() - c0
    hu = np.clip(np.rint(img), -1024, 3071).astype(np.int16)
    write_series(s, hu, tmp / f"s{seed}" / "dicom", seed)
    write_nifti_deterministic(hu, s.affine, tmp / f"s{seed}" / "ct.nii.gz", label=False)
    for k, v in labels.items():
        write_nifti_deterministic(v, s.affine, tmp / f"s{seed}" / f"{k}.nii.gz")
    return t1 - t0, time.perf_counter() - t1, cpu


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    render, write, cpu = [], [], []
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            r, w, c = one(100 + i, Path(d))
            render.append(r)
            write.append(w)
            cpu.append(c)
            print(f"run {i}: render+truth {r:.2f} s wall ({c:.2f} s CPU), write {w:.2f} s, "
                  f"load avg {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    print(f"median render+truth {np.median(render):.2f} s wall, {np.median(cpu):.2f} s CPU (target < 10 s), "
          f"median write {np.median(write):.2f} s, "
          f"{n} runs, 256x256x200 CT")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
