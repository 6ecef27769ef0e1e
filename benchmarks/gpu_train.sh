#!/usr/bin/env bash
# One lent-GPU session of the built-in model's recipe, sized for a 10-minute call:
#   1. the GPU inference check (benchmarks/gpu_check.sh) while the first 200 training cases
#      and the validation cases render on the other cores;
#   2. training with configs/train_gpu.yaml (time budget) while the rest of the cache
#      renders in the background (the loop picks new cases up every reload_every steps);
#   3. export, logs and card copied to $OUT (or runs/gpu_out).
# Python packages the GPU image lacks travel as wheels in .whl/ (see the device README).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUTDIR="${OUT:-runs/gpu_out}"; mkdir -p "$OUTDIR"
BUDGET="${1:-400}"          # training seconds
N_FIRST="${N_FIRST:-200}"   # training cases rendered before training starts
N_TOTAL="${N_TOTAL:-1200}"  # training cases in all (the rest render during training)
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD:${PYTHONPATH:-}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
python3 -c "import torch, monai, pipeline.cli; print('torch', torch.__version__, 'monai', monai.__version__, 'cuda', torch.cuda.is_available())" || exit 4
render() {  # render(first_seed end_seed workers): validation cases and training seeds
  python3 -m pipeline train --config configs/train_gpu.yaml --cache-only \
    --train-seeds "$1" "$2" --workers "$3" && echo "rendered seeds $1-$2"
}
t0=$(date +%s)
render 0 "$N_FIRST" 12 > "$OUTDIR/render1.log" 2>&1 &
R1=$!
[ -n "${SKIP_CHECK:-}" ] || bash benchmarks/gpu_check.sh cuda 2>&1 | tee "$OUTDIR/gpu_check.json"
wait $R1 || { cat "$OUTDIR/render1.log"; exit 5; }
echo "check + first cache: $(( $(date +%s) - t0 )) s"
render "$N_FIRST" "$N_TOTAL" 5 > "$OUTDIR/render2.log" 2>&1 &
python3 -m pipeline train --config configs/train_gpu.yaml --time-budget "$BUDGET" 2>&1 | tee "$OUTDIR/train.log"
rc=${PIPESTATUS[0]}
pkill -f "cache-only" 2>/dev/null
cp runs/gpu_export/model.safetensors runs/gpu_export/card.yaml runs/gpu/metrics.jsonl "$OUTDIR/" 2>/dev/null
ls runs/cache-gpu/train | wc -l
echo "total $(( $(date +%s) - t0 )) s, train rc $rc"
exit $rc
