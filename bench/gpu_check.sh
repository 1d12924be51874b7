#!/usr/bin/env bash
# The prepared GPU check (issue 14, part 5), for a lent H100/H200: at most about 5 minutes, a few files under $OUT.
#   bench/gpu_check.py (budget $BUDGET_S = 200 s, then 40 s of grace, then the running part is stopped): tiny on
#   CUDA vs CPU and the syncs in the loop; small-random generate vs own loop eager (float32 batch 64, bfloat16 batch
#   256), plain and edited (hook overhead); the per-step split; the toy world's effects in float32 / bfloat16 / CUDA
#   graphs vs the CPU; then compiled and CUDA-graph throughput and medium-random -> $OUT/gpu_check.csv (also
#   printed at the end), $OUT/gpu_check.log
#   PROFILE=1 instead profiles one CUDA-graph generation (small-random, bfloat16, batch 256) -> $OUT/profile.txt
#   BENCH=1 also runs the tiny bench suite on CUDA (golden values checked as on the CPU; 80 s at most).
# Models and caches go to $WORK (default /tmp/mgbench-gpu), never $OUT. No pipes: a stopped run leaves no process
# holding them open (the first run on a GPU hung so, and nothing came back; docs/performance.md).
# Dry run on a CPU: DEVICE=cpu bench/gpu_check.sh (tiny models, a short plan).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu-check}
WORK=${WORK:-/tmp/mgbench-gpu}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 MGBENCH_HOME=${MGBENCH_HOME:-$WORK/home} TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-16}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's mgbench
if [[ $DEVICE == cuda ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.csv" 2>&1
  timeout -k 10 300 python bench/gpu_check.py --device cuda --out "$OUT" --work "$WORK" --budget-s "${BUDGET_S:-200}" \
    ${PROFILE:+--profile} > "$OUT/gpu_check.log" 2>&1
  echo "gpu_check.py: exit $?"
  if [[ ${BENCH:-0} == 1 ]]; then
    # the plugin's entry point exists only where mgbench is pip-installed
    plugin=$(python -c "import importlib.metadata as m; print('' if any(e.name == 'mgbench' for e in
      m.entry_points(group='pytest11')) else '-p mgbench.pytest_plugin')")
    timeout -k 10 80 python -m pytest -q $plugin -p no:cacheprovider bench/test_paper.py --gpu -k tiny \
      --results "$WORK/bench-tiny" > "$OUT/bench-tiny.log" 2>&1
    echo "tiny bench on CUDA: exit $? ($(tail -1 "$OUT/bench-tiny.log"))"
  fi
else
  python bench/gpu_check.py --device cpu --out "$OUT" --work "$WORK" --seconds 0.5 --budget-s "${BUDGET_S:-200}" \
    ${PROFILE:+--profile} > "$OUT/gpu_check.log" 2>&1
  echo "gpu_check.py: exit $?"
fi
cat "$OUT/gpu_check.csv"
