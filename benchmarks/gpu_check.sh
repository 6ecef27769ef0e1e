#!/usr/bin/env bash
# GPU check of the built-in segmenter: inference on one synthetic CT and one synthetic MR
# study on CUDA, an axial T2 stack with the canal refinement and the CT canal and lesion refinements; prints time per study (after a warm-up run) and peak GPU memory.
# Installs nothing beyond the project itself (pip --no-deps): the machine must already
# have torch with CUDA, monai, numpy, scipy, nibabel, pydicom, SimpleITK, safetensors, pyyaml.
# Usage: bash benchmarks/gpu_check.sh [cuda:0]
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE="${1:-cuda}"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import pipeline" 2>/dev/null; then
  "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH="$PWD:${PYTHONPATH:-}"
fi
"$PY" - "$DEVICE" <<'PYEOF'
import sys, time, json
import torch
dev = sys.argv[1]
if not torch.cuda.is_available():
    print(json.dumps({"error": "CUDA not available", "torch": torch.__version__})); sys.exit(2)
from pipeline.synth import make_training_pair
from pipeline.segment import get_segmenter
t = time.perf_counter()
seg = get_segmenter("builtin", device=dev)
load_s = time.perf_counter() - t
studies = {
    "CT 512x512x200 (0.78x0.78x1.5 mm)": make_training_pair(11, "CT", domain_randomised=False, spacing_mm=(0.78, 0.78, 1.5), shape=(512, 512, 200))[0],
    "MR sagittal 40x320x320 (4x0.7x0.7 mm)": make_training_pair(12, "MR", domain_randomised=False, spacing_mm=(4.0, 0.7, 0.7), shape=(40, 320, 320))[0],
}
res = {"device": torch.cuda.get_device_name(torch.device(dev)), "torch": torch.__version__, "model_load_s": round(load_s, 2)}
for name, vol in studies.items():
    seg.segment(vol)  # warm-up (cuDNN autotune, allocator)
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter(); out = seg.segment(vol); torch.cuda.synchronize()
    res[name] = {"seconds": round(time.perf_counter() - t, 3), "timings": out.meta["timings"],
                 "peak_gpu_mem_gb": round(torch.cuda.max_memory_allocated() / 1024**3, 3),
                 "precision": out.meta["precision"], "levels": out.levels}
# Axial T2 stack (256x256x26, 0.7x0.7x4 mm): segmentation, then the canal refinement
import numpy as np
from pipeline.io import Volume
from pipeline.synth.acquisition import acquire, mr_axial
from pipeline.synth.generator import StudyOptions, random_world
rng = np.random.default_rng(13)
world, plan = random_world(rng, StudyOptions(grade="2", region="thoracic"))
series = mr_axial(world, rng, plan.epidural_level or plan.index_level)
ax = Volume(acquire(world, series, rng)[0], np.asarray(series.affine), "MR")
seg.refine_canal(ax, seg.segment(ax))  # warm-up
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
t = time.perf_counter(); out = seg.refine_canal(ax, seg.segment(ax)); torch.cuda.synchronize()
res["MR axial T2 + canal refinement"] = {"seconds": round(time.perf_counter() - t, 3), "timings": out.meta["timings"],
    "canal_refine": out.meta["canal_refine"], "peak_gpu_mem_gb": round(torch.cuda.max_memory_allocated() / 1024**3, 3)}
def timed(name, fn, key):
    """Time one refinement on the GPU: seconds, its meta[key] and peak GPU memory."""
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter(); out = fn(); torch.cuda.synchronize()
    res[name] = {"seconds": round(time.perf_counter() - t, 3), key: out.meta[key],
                 "peak_gpu_mem_gb": round(torch.cuda.max_memory_allocated() / 1024**3, 3)}
# CT 512x512x200: the CT canal refinement (Bilsky estimated on CT without an axial T2) and
# the bone-lesion refinement spinemet run applies to every CT; the sagittal MR lesion
# refinement it applies to a sagittal MR series
ct = studies["CT 512x512x200 (0.78x0.78x1.5 mm)"]
ct_seg = seg.segment(ct)
timed("CT canal refinement", lambda: seg.refine_canal(ct, ct_seg), "canal_refine")
timed("CT lesion refinement", lambda: seg.refine_lesions(ct, ct_seg), "lesion_refine")
sag = studies["MR sagittal 40x320x320 (4x0.7x0.7 mm)"]
sag_seg = seg.segment(sag)
timed("MR sagittal lesion refinement", lambda: seg.refine_lesions(sag, sag_seg), "lesion_refine")
print(json.dumps(res, indent=1))
PYEOF
