#!/usr/bin/env bash
# One command for a CUDA machine: tokens/s and MFU of `small` and `gpt2-124m` at context 1024, bf16 + compile,
# on 1 GPU and (when there are several) on all of them through torchrun; then the CPU-baseline bench on CUDA.
#   bench/gpu_bench.sh [STEPS]        (run from the repository root; PYTHON=... picks the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
STEPS=${1:-60}
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
[ "$GPUS" -ge 1 ] || { echo "no CUDA GPU here" >&2; exit 1; }
summary() {  # median tokens/s and MFU of the steps after the first 10 (compile and warm-up)
  $PY -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")][10:]
tps = statistics.median(r["tokens_per_s"] for r in rows)
mfu = statistics.median(r["mfu"] for r in rows) if rows and rows[0].get("mfu") is not None else float("nan")
print(f"{sys.argv[1]:<32} {tps:>12,.0f} tokens/s   MFU {mfu:.1%}   ({len(rows)} steps)")' "$1"
}
run() {  # label, nproc, preset, extra flags...
  local label=$1 nproc=$2 preset=$3; shift 3
  local flags=(--preset "$preset" --context-length 1024 --steps "$STEPS" --eval-every 0 --sample-every 0
               --dtype bfloat16 --compile --device cuda --json "$@")
  if [ "$nproc" -gt 1 ]; then
    $PY -m explorer train --nproc "$nproc" "${flags[@]}" 2>/dev/null | summary "$label"
  else
    $PY -m explorer train "${flags[@]}" 2>/dev/null | summary "$label"
  fi
}
$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0), 'x', torch.cuda.device_count())"
run "small 1 GPU" 1 small --batch-size 16
run "gpt2-124m 1 GPU" 1 gpt2-124m --batch-size 8 --grad-accum-steps 1
if [ "$GPUS" -gt 1 ]; then
  run "small $GPUS GPUs" "$GPUS" small --batch-size 16
  run "gpt2-124m $GPUS GPUs" "$GPUS" gpt2-124m --batch-size 8 --grad-accum-steps 1
fi
$PY bench/train_bench.py --device cuda --threads 0 --steps 100 --repeats 3 --compile
