#!/usr/bin/env bash
# The prepared scale-out check (issue 15) for a lent GPU machine; about 3 minutes, results under $OUT.
#   1. shards on CUDA: a tiny sweep as 3 concurrent `--shard I/3` runs on one GPU, then a plain run (must compute
#      nothing), against one process on CUDA: per table, row counts and the largest difference -> $OUT/compare.txt
#   2. where Ray is installed: `--workers 2` on CUDA against the same one process, and bench/test_scaleout.py
#      (1 vs 2 local Ray workers on the CPU) -> $OUT/bench/bench.csv
# Dry run on a CPU (a smaller sweep): DEVICE=cpu bench/scaleout_check.sh
# (The session that wrote it had no way to run it on a GPU: the device tool copies the main checkout only.)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/scaleout-check}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MGBENCH_HOME=${MGBENCH_HOME:-$OUT/home} OMP_NUM_THREADS=1
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/env.txt"
python -c "import ray; print('ray', ray.__version__)" > /dev/null 2>&1 && HAVE_RAY=1 || HAVE_RAY=0
echo "ray installed: $HAVE_RAY" | tee -a "$OUT/env.txt"
SIZE=(--concepts guitar,jazz,piano,rock --layers 0-3 --components mlp,cross_attn --prompts 4 --seconds 1)
[[ $DEVICE == cpu ]] && SIZE=(--concepts guitar,jazz,piano --layers 1,3 --components mlp --prompts 1 --seconds 0.3)
SWEEP=(run --model tiny --device "$DEVICE" "${SIZE[@]}" --listen 0 --no-report)
mg() { python -m mgbench.cli "$@"; }
start=$SECONDS; mg "${SWEEP[@]}" --cache "$OUT/one" --out "$OUT/one-out" > "$OUT/one.log" 2>&1
echo "one process: $((SECONDS - start)) s, exit $?" | tee -a "$OUT/env.txt"
start=$SECONDS
for i in 1 2 3; do mg "${SWEEP[@]}" --cache "$OUT/sharded" --shard "$i/3" > "$OUT/shard$i.log" 2>&1 & done; wait
echo "3 shards at once: $((SECONDS - start)) s" | tee -a "$OUT/env.txt"
find "$OUT/sharded" -type f -printf '%p %i %T@\n' | sort > "$OUT/store-before.txt"
mg "${SWEEP[@]}" --cache "$OUT/sharded" --out "$OUT/sharded-out" > "$OUT/plain.log" 2>&1
find "$OUT/sharded" -type f -printf '%p %i %T@\n' | sort > "$OUT/store-after.txt"
cmp -s "$OUT/store-before.txt" "$OUT/store-after.txt" && echo "plain run after the shards wrote nothing" \
  || echo "plain run after the shards WROTE files"
outs=(sharded-out)
if [[ $HAVE_RAY == 1 ]]; then
  mg "${SWEEP[@]}" --cache "$OUT/ray" --out "$OUT/ray-out" --workers 2 > "$OUT/ray.log" 2>&1; outs+=(ray-out)
  timeout 240 python -m pytest -q bench/test_scaleout.py -p no:cacheprovider --results "$OUT/bench" \
    > "$OUT/bench.log" 2>&1; tail -3 "$OUT/bench.log"
fi
for other in "${outs[@]}"; do
python - "$OUT/one-out" "$OUT/$other" <<'PY' | tee -a "$OUT/compare.txt"
import sys
from pathlib import Path

import pandas as pd

one, other = map(Path, sys.argv[1:])
IDS = {"decoderlens": ["concept", "layer", "prompt_id"], "similarity": ["concept", "layer_i", "layer_j"],
       "interventions": ["technique", "original", "desired", "layer", "component", "prompt_id"],
       "ceiling": ["original", "desired", "prompt_id"]}
for name, ids in IDS.items():
    a, b = (pd.read_parquet(d / f"{name}.parquet") for d in (one, other))
    a, b = (t.sort_values(ids).reset_index(drop=True) for t in (a, b))
    num = a.select_dtypes("number").columns.difference(ids)
    same = a.shape == b.shape and a[ids].equals(b[ids])
    diff = (a[num] - b[num]).abs().max().max() if same else float("nan")
    print(f"{other.name} {name}: rows {len(a)} vs {len(b)}, ids equal {same}, exactly equal {a.equals(b)}, "
          f"largest difference {diff:.3g}, duplicated ids {b.duplicated(ids).sum()}")
PY
done
