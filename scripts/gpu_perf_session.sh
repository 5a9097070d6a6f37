#!/usr/bin/env bash
# One device call of the performance work, each stage under its own time limit, results under $OUT/perf
# (see docs/PERFORMANCE.md). full: GPU tests of the fast paths, decode and prefill benchmarks, a prefill
# profile; repro: decode and prefill benchmarks again, and the harness throughput benchmark.
#   bash scripts/gpu_perf_session.sh [full|repro]
set -uo pipefail
mode=${1:-full}
out=${OUT:-/tmp/out}/perf
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-}:$PWD
filter() { grep -v -i -E "warn|^\s*$|Writing model|Loading weights" ; }
if [ "$mode" = full ]; then
  timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/baselines/test_static_decode_gpu.py 2>&1 | tail -6
fi
timeout 230 python3 scripts/bench_decode.py --out "$out" 2>&1 | filter | grep -v '^{'
timeout 160 python3 scripts/bench_gpu.py --out "$out" --lengths 131072 --full-chunk 131072 --reps 5 --skip-decode \
  --skip-parity --extra-chunks 8192 2>&1 | filter | grep '^|'
if [ "$mode" = full ]; then
  timeout 70 python3 scripts/profile_prefill.py --skip-micro --methods ahn-gdn --top 20 --out "$out/profile.jsonl" \
    2>&1 | filter | grep -v '^{' | tail -24
fi
if [ "$mode" = repro ]; then
  timeout 220 python3 scripts/bench_throughput.py --out "$out" --samples 4 --batch 4 --baseline-samples 1 2>&1 \
    | filter | grep '^|'
fi
