#!/usr/bin/env bash
# The prepared GPU check (issue 14, part 5), for a lent H100/H200; about 8 minutes, results under $OUT.
#   1. the tiny bench suite on CUDA (golden values checked as on the CPU)
#   2. bench/gpu_check.py: tiny on CUDA vs CPU and syncs in the loop; small-random and medium-random at two
#      batch sizes, generate vs own loop eager/static/compiled/CUDA graphs, float32 vs bfloat16, clips/s,
#      peak memory, fraction of the hardware limit -> $OUT/gpu_check.csv
# Dry run on a CPU: DEVICE=cpu bench/gpu_check.sh (tiny only, eager only, no bench suite).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu-check}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's mgbench
if [[ $DEVICE == cuda ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" || true
  timeout 150 python -m pytest -q bench/test_paper.py --gpu -k tiny -p no:cacheprovider \
    --results "$OUT/bench-tiny" > "$OUT/bench-tiny.log" 2>&1 || echo "tiny bench on CUDA: see $OUT/bench-tiny.log"
  timeout 330 python bench/gpu_check.py --device cuda --out "$OUT" --budget-s 240 2>&1 | tee "$OUT/gpu_check.log"
else
  python bench/gpu_check.py --device cpu --out "$OUT" --models tiny --batches 2 --modes generate,eager,eager_static \
    --dtypes float32 --seconds 0.5 2>&1 | tee "$OUT/gpu_check.log"
fi
