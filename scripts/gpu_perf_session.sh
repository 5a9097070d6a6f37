#!/usr/bin/env bash
# One device call of the performance work, each stage under its own time limit, results under $OUT/perf
# (docs/PERFORMANCE.md says what each stage measures and the numbers it gave).
#   bash scripts/gpu_perf_session.sh [decode-prefill|throughput|split|fused|all]
# decode-prefill: the static step (fused and plain), eager and stock transformers decode at 128k (ahn-gdn also
# at 32k and 512k), B = 1 and 8; prefill of 131,072 tokens (ahn-gdn with the split and flex window attention,
# full in one cuDNN pass). throughput: samples per hour of `harness run` on the two workloads, new paths on
# and off. split: the split window attention's GPU tests, its pieces timed against their earlier forms and a
# layer's norm and MLP eager against compiled in the same run, and ahn-gdn's prefill under the profiler. fused:
# prefill of 131,072 tokens (ahn-gdn, and full in one pass) with the fused norm and MLP off and on
# (baselines/fused_layers.py). Each benchmark checks the GPU is otherwise idle and records device, clocks and
# software.
set -uo pipefail
mode=${1:-decode-prefill}
out=${OUT:-/tmp/out}/perf
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-}:$PWD
filter() { grep -v -i -E "warn|^\s*$|Writing model|Loading weights" ; }
if [ "$mode" = decode-prefill ] || [ "$mode" = all ]; then
  timeout 320 python3 scripts/bench_decode.py --out "$out" --methods ahn-gdn,swa,full --lengths 131072 \
    --long 32768,524288 --batches 1,8 --variants fused,plain 2>&1 | filter | grep -v '^{'
  timeout 150 python3 scripts/bench_gpu.py --out "$out" --lengths 131072 --methods ahn-gdn,full --reps 5 \
    --full-chunk 131072 --window-attention split,flex --skip-decode --skip-parity --extra-chunks '' 2>&1 \
    | filter | grep '^|'
fi
if [ "$mode" = throughput ] || [ "$mode" = all ]; then
  timeout 300 python3 scripts/bench_throughput.py --out "$out" --samples 4 --batch 4 --baseline-samples 1 2>&1 \
    | filter | grep '^|'
fi
if [ "$mode" = split ] || [ "$mode" = all ]; then
  timeout 120 python3 -m pytest -q -m gpu tests/baselines/test_split_attention.py 2>&1 | tail -3
  timeout 240 python3 scripts/profile_prefill.py --length 131072 --methods ahn-gdn --skip-micro \
    --out "$out/prefill_profile.jsonl" 2>&1 | filter | grep -E '^\{"micro": "(split|fusion)|^==' | cut -c1-400
fi
if [ "$mode" = fused ] || [ "$mode" = all ]; then
  timeout 130 python3 -m pytest -q -m gpu tests/baselines/test_fused_layers.py 2>&1 | tail -3
  timeout 330 python3 scripts/bench_gpu.py --out "$out/fused" --lengths 131072 --methods ahn-gdn,full --reps 5 \
    --full-chunk 131072 --fused-layers 0,1 --skip-decode --skip-parity --extra-chunks '' 2>&1 | filter | grep '^|'
fi
