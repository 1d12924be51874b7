#!/usr/bin/env bash
# The prepared GPU check (issue 14, part 5), for a lent H100/H200: about 6 minutes, a few files under $OUT.
#   1. bench/gpu_check.py (budget $BUDGET_S, 240 s): tiny on CUDA vs CPU and syncs in the loop; small-random
#      (float32 batch 64, bfloat16 batch 256) and medium-random: generate vs own loop eager / static / compiled /
#      CUDA graphs, plain and edited (hook overhead); the toy world's effects float32 / bfloat16 / CUDA graphs vs the
#      CPU; the per-step split -> $OUT/gpu_check.csv, $OUT/gpu_check.log
#   2. the tiny bench suite on CUDA (golden values checked as on the CPU; 80 s at most) -> $OUT/bench-tiny.*
# Models, caches and the bench's results go to $WORK (default /tmp/mgbench-gpu), not $OUT.
# Dry run on a CPU: DEVICE=cpu bench/gpu_check.sh (tiny models, a short plan, no bench suite).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu-check}
WORK=${WORK:-/tmp/mgbench-gpu}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 MGBENCH_HOME=${MGBENCH_HOME:-$WORK/home}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's mgbench
if [[ $DEVICE == cuda ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.csv" || true
  timeout 330 python bench/gpu_check.py --device cuda --out "$OUT" --work "$WORK" --budget-s "${BUDGET_S:-240}" 2>&1 \
    | grep -v "Warning\|it/s\]\|s/it\]" | tee "$OUT/gpu_check.log"
  # the plugin's entry point exists only where mgbench is pip-installed
  plugin=$(python -c "import importlib.metadata as m; print('' if any(e.name == 'mgbench' for e in
    m.entry_points(group='pytest11')) else '-p mgbench.pytest_plugin')")
  timeout 80 python -m pytest -q $plugin -p no:cacheprovider bench/test_paper.py --gpu -k tiny \
    --results "$WORK/bench-tiny" > "$OUT/bench-tiny.log" 2>&1
  echo "tiny bench on CUDA: exit $? ($(tail -1 "$OUT/bench-tiny.log"))"
  cp "$WORK/bench-tiny/bench.csv" "$OUT/bench-tiny.csv" 2>/dev/null || true
else
  python bench/gpu_check.py --device cpu --out "$OUT" --work "$WORK" --seconds 0.5 --budget-s 200 2>&1 \
    | tee "$OUT/gpu_check.log"
fi
