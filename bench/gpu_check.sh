#!/usr/bin/env bash
# The prepared GPU check (issue 14, part 5), for a lent H100/H200: about 7 minutes, results under $OUT.
#   1. bench/gpu_check.py (budget 270 s): tiny on CUDA vs CPU and syncs in the loop; small-random (float32 batch
#      64, bfloat16 batch 256) and medium-random: generate vs own loop eager / static / compiled / CUDA graphs,
#      plain and edited (hook overhead), the toy world's effects float32 / bfloat16 / CUDA graphs vs the CPU, the
#      per-step split -> $OUT/gpu_check.csv
#   2. the tiny bench suite on CUDA (golden values checked as on the CPU; 100 s at most) -> $OUT/bench-tiny.log
# Dry run on a CPU: DEVICE=cpu bench/gpu_check.sh (tiny models, a short plan, no bench suite).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu-check}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MGBENCH_HOME=${MGBENCH_HOME:-$OUT/home}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's mgbench
if [[ $DEVICE == cuda ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.csv" || true
  timeout 400 python bench/gpu_check.py --device cuda --out "$OUT" --budget-s "${BUDGET_S:-270}" 2>&1 \
    | grep -v Warning | tee "$OUT/gpu_check.log"
  timeout 100 python -m pytest -q -p mgbench.pytest_plugin -p no:cacheprovider bench/test_paper.py --gpu -k tiny \
    --results "$OUT/bench-tiny" > "$OUT/bench-tiny.log" 2>&1
  echo "tiny bench on CUDA: exit $? ($(tail -1 "$OUT/bench-tiny.log"))"
else
  python bench/gpu_check.py --device cpu --out "$OUT" --seconds 0.5 --budget-s 200 2>&1 | tee "$OUT/gpu_check.log"
fi
