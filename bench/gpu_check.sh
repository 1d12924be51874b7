#!/usr/bin/env bash
# The prepared GPU check (issue 28), for a lent H100/H200: at most 8 minutes, a few files under $OUT.
#   bench/gpu_check.py, parts in order while its budget lasts ($BUDGET_S = 400 s to start a part, then 40 s of grace,
#   then the running part is stopped; the timeout below stops anything left at 470 s): single-query attention per
#   backend; EnCodec float32 vs bfloat16; small-random bfloat16 batch 256 at 4 s with CUDA graphs, today's loop and
#   each lever added; correctness (alone vs in a batch, null edit, compiled vs eager); batch 512 with every lever
#   against generate, plain and edited -> $OUT/gpu_check.csv (a row per measurement, written as it finishes; also
#   printed at the end), $OUT/gpu_check.log, $OUT/gpu.csv (nvidia-smi).
#   PARTS=profile instead profiles one generation with every lever -> $OUT/profile.txt (about 2 minutes).
#   BENCH=1 also runs the tiny bench suite on CUDA (golden values checked as on the CPU; 80 s at most).
# Expected on an H200: about 7-8 minutes (compiling is most of it: about 35 s for the first graph of small-random,
#   10-20 s for each further one; the levers part compiles 7 decoder graphs and EnCodec once).
# Models and caches go to $WORK (default /tmp/mgbench-gpu), never $OUT. No pipes: a stopped run leaves no process
# holding them open.
# Dry run on a CPU (tiny model, short clips, dynamo's eager backend; about 1.5 minutes on 2 cores):
#   DEVICE=cpu bench/gpu_check.sh
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
  timeout -k 10 470 python bench/gpu_check.py --device cuda --out "$OUT" --budget-s "${BUDGET_S:-400}" \
    ${PARTS:+--parts "$PARTS"} > "$OUT/gpu_check.log" 2>&1
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
  python bench/gpu_check.py --device cpu --out "$OUT" --budget-s "${BUDGET_S:-400}" ${PARTS:+--parts "$PARTS"} \
    > "$OUT/gpu_check.log" 2>&1
  echo "gpu_check.py: exit $?"
fi
cat "$OUT/gpu_check.csv"
