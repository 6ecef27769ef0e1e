"""CPU (or GPU) speed and memory of the built-in segmenter on a 512 x 512 x 200 CT.

The CT is a realistic synthetic render (``pipeline.synth``, 0.78 x 0.78 x 1.5 mm) made
once and saved under ``runs/``; segmentation then runs in a fresh child process so that
its peak resident memory is measured alone (``ru_maxrss`` of the child; loading the
array from disk is excluded from the time, included in the memory). Targets (issue 5):
under 30 s end to end, peak memory under 4 GB, on this 2-core machine.

Usage::

    python benchmarks/bench_segment.py [--threads 2] [--repeats 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "runs" / "bench_ct_512x512x200.npz"


def make_case() -> None:
    from pipeline.synth import make_training_pair

    vol, _ = make_training_pair(
        4242, "CT", domain_randomised=False, spacing_mm=(0.78, 0.78, 1.5), shape=(512, 512, 200)
    )
    CASE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CASE, array=vol.array.astype(np.float32), affine=vol.affine)


def child(threads: int, repeats: int, device: str) -> None:
    import torch

    torch.set_num_threads(threads)
    from pipeline.io import Volume
    from pipeline.segment import get_segmenter

    with np.load(CASE) as z:
        vol = Volume(z["array"], z["affine"], "CT")
    t = time.perf_counter()
    seg = get_segmenter("builtin", device=device)
    load_s = time.perf_counter() - t
    times, meta = [], {}
    for _ in range(repeats):
        t = time.perf_counter()
        out = seg.segment(vol)
        times.append(time.perf_counter() - t)
        meta = out.meta
    print(
        json.dumps(
            {
                "model_load_s": round(load_s, 2),
                "segment_s": [round(x, 2) for x in times],
                "timings_last": meta.get("timings"),
                "model_grid": meta.get("model_grid"),
                "levels": out.levels,
                "device": meta.get("device"),
            }
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", action="store_true")
    a = ap.parse_args()
    if a.child:
        child(a.threads, a.repeats, a.device)
        return 0
    if not CASE.exists():
        t = time.perf_counter()
        make_case()
        print(f"rendered the benchmark CT in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    r = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--threads",
            str(a.threads),
            "--repeats",
            str(a.repeats),
            "--device",
            a.device,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode:
        print(r.stderr, file=sys.stderr)
        return r.returncode
    res = json.loads(r.stdout.strip().splitlines()[-1])
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # kB -> GB
    res["peak_rss_gb"] = round(peak_gb, 2)
    res["median_segment_s"] = float(np.median(res["segment_s"]))
    res["meets_30s"] = res["median_segment_s"] < 30
    res["meets_4gb"] = peak_gb < 4
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
