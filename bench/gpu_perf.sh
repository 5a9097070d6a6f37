#!/usr/bin/env bash
# The GPU performance benchmarks as one command of at most ~10 minutes, each stage under its own time limit,
# results under $OUT/perf (docs/PERFORMANCE.md says what each stage measures and the numbers it gave).
#   bash bench/gpu_perf.sh [decode-prefill|reproduce|batched|throughput|fused|flex|profile|all|auto|
#                          fp32-batched|prefill-ab|lveval]
# auto: decode-prefill on an H200 (the card the decode and prefill targets name); on any other card throughput
# (with each sample's time split), so a run that lands on the other card is not wasted. fp32-batched (≤ 10
# minutes, best on a warm machine): the fp32 half of bench/check_batched_ids.py past the window (AHN writing
# at every step). decode-prefill (the headline decode and prefill numbers, ~9 minutes): the static step's GPU
# tests, then the static step (FlexAttention over the slots), eager and stock transformers decode at 128k
# (ahn-gdn also at 32k and 512k), B = 1 and 8; prefill of 131,072 tokens (ahn-gdn at the default chunk, full
# in one cuDNN pass), five runs each. reproduce (~8 minutes): the static step's GPU tests, the static step of
# ahn-gdn, swa and full at 128k, B = 1 and 8 (no stock), and ahn-gdn's prefill at chunks 4,096 and 16,384,
# five runs each, one process per chunk. batched (~7 minutes): the GPU test of distinct requests decoded
# together against each alone (fp32), then bench/check_batched_ids.py: where bf16 batched and B = 1 greedy ids
# part, against the rounding noise before. throughput: samples per hour of `harness run` on the two workloads,
# new paths batched, at B = 1 (predictions compared with the batched ones) and off. fused: the GPU tests of
# the prefill's fast paths (split window attention, fused layers, cuDNN's causal pass, AHN's chunk graphs),
# then the prefill of 131,072 tokens (ahn-gdn, and full in one pass) with the fused norm, MLP and merge off
# and on, and the compiled rotary embedding off and on (baselines/fused_layers.py), in the same run. flex: the
# GPU tests of the static step, FlexAttention's decoding kernel over its options (bench/bench_flex_decode.py),
# and ahn-gdn's step profiled at B = 1 and 8. profile: the split pieces and a layer's norm and MLP timed
# against their plain forms in the same run, ahn-gdn's prefill under the profiler, and the static decode
# step's kernels (ahn-gdn and swa). Each benchmark checks the GPU is otherwise idle and records device, clocks
# and software.
# A fresh machine spends minutes compiling (the throughput warm-up: 306 s in
# leaderboards/perf/throughput-lveval-h100/a/throughput.json, 159 s in host-profile-h100/throughput.json). The
# compiled kernels are kept in one cache folder and come back as $OUT/inductor-cache.tgz.00, .01, … (15 MiB
# pieces: the GPU machine returns files of at most 16 MiB); put them in the ignored folder .inductor-cache/
# and carry it, and the next fresh machine starts from them (inductor's and Triton's own on-disk caches, keyed
# by the code, the card and the software: a stale entry is never used, only recompiled).
set -uo pipefail
mode=${1:-decode-prefill}
cache=/tmp/inductor-cache
export TORCHINDUCTOR_CACHE_DIR=$cache TRITON_CACHE_DIR=$cache/triton-user TRITON_CACHE_AUTOTUNING=1
mkdir -p "$cache"
if compgen -G ".inductor-cache/inductor-cache.tgz.*" > /dev/null; then
  cat .inductor-cache/inductor-cache.tgz.* | tar -xzf - -C "$cache" \
    && echo "inductor cache: $(du -sh "$cache" | cut -f1) restored"
fi
save_cache() {  # at most three pieces come back (the GPU machine returns eight files a command)
  tar -czf /tmp/inductor-cache.tgz -C "$cache" . 2>/dev/null
  size=$(stat -c %s /tmp/inductor-cache.tgz)
  if [ "$size" -le $((3 * 15728640)) ]; then split -b 15m -d /tmp/inductor-cache.tgz "${OUT:-/tmp/out}/inductor-cache.tgz."; fi
  echo "inductor cache: $((size / 1048576)) MiB compressed$([ "$size" -le $((3 * 15728640)) ] || echo ', too large to come back')"
}
trap save_cache EXIT
if [ "$mode" = auto ]; then
  card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  echo "card: $card"
  case "$card" in *H200*) mode=decode-prefill ;; *) mode=other-card ;; esac
fi
out=${OUT:-/tmp/out}/perf
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-}:$PWD
filter() { grep -v -i -E "warn|^\s*$|Writing model|Loading weights" ; }
prefill_profile() {  # ahn-gdn's prefill of 131,072 tokens at the engine's chunk under the profiler, within $1 s
  timeout "$1" python3 -m bench.profile_prefill --length 131072 --methods ahn-gdn --skip-micro --shapes \
    --out "$out/prefill_profile.jsonl" 2>&1 | filter | grep -E '^\{"micro": "(split|fusion)|^==|^ +[0-9.]+ ms' \
    | cut -c1-300
}
host_profile_lines() {  # the harness's own functions in a cProfile listing (bench_throughput.py --profile-host)
  [ -f "$1" ] && grep -E 'ncalls|runner.py|engine.py|static_decode.py|prompting.py|store.py|record.py' "$1" \
    | head -45
}
if [ "$mode" = decode-prefill ] || [ "$mode" = all ]; then
  timeout 110 python3 -m pytest -q -m gpu tests/baselines/test_static_decode_gpu.py 2>&1 | tail -3
  timeout 260 python3 -m bench.bench_decode --out "$out" --methods ahn-gdn,swa,full --lengths 131072 \
    --long 32768,524288 --batches 1,8 --variants fused 2>&1 | filter | grep -v '^{'
  timeout 190 python3 -m bench.bench_gpu --out "$out" --lengths 131072 --methods ahn-gdn,full --reps 5 \
    --full-chunk 131072 --skip-decode --skip-parity --extra-chunks '' 2>&1 | filter | grep '^|'
fi
if [ "$mode" = reproduce ]; then
  timeout 150 python3 -m pytest -q -m gpu tests/baselines/test_static_decode_gpu.py 2>&1 | tail -3
  timeout 280 python3 -m bench.bench_decode --out "$out" --methods ahn-gdn,swa,full --lengths 131072 --long '' \
    --batches 1,8 --variants fused --skip-stock 2>&1 | filter | grep '^|'
  for chunk in 4096 16384; do  # a fresh machine's first prefill compiles for most of a minute
    timeout 130 python3 -m bench.bench_gpu --out "$out/chunk$chunk" --chunk "$chunk" --lengths 131072 \
      --methods ahn-gdn --reps 5 --skip-decode --skip-parity --extra-chunks '' 2>&1 | filter | grep '^| ahn'
  done
fi
if [ "$mode" = batched ]; then
  timeout 100 python3 -m pytest -q -m gpu tests/baselines/test_static_decode_gpu.py -k batched_rows 2>&1 | tail -3
  timeout 360 python3 -m bench.check_batched_ids --out "$out" --length 40960 --rows 4 --steps 64 2>&1 | filter
fi
if [ "$mode" = other-card ]; then  # a fresh machine's warm-up compiles for ~5 minutes (throughput-lveval-h100/a)
  timeout 430 python3 -m bench.bench_throughput --out "$out" --workloads lveval-128k --samples 4 --batch 4 \
    --baseline-samples 1 --profile-host 2 2>&1 | filter | grep -E '^\||^profiled'
  host_profile_lines "$out/host_profile.txt"
  left=$((530 - SECONDS))
  if [ "$left" -gt 90 ]; then prefill_profile "$left"; fi
fi
if [ "$mode" = lveval ]; then  # throughput of LV-Eval's shape only (~5 minutes on a fresh machine)
  timeout 450 python3 -m bench.bench_throughput --out "$out" --workloads lveval-128k --samples 4 --batch 4 \
    --baseline-samples 1 2>&1 | filter | grep -E '^\|'
fi
if [ "$mode" = prefill-ab ]; then  # this tree's prefill against .prev's (an ignored copy of an earlier commit:
  # `mkdir .prev && git archive <commit> | tar -x -C .prev`), in one command, alternating; first the AHN-GDN
  # GPU parity tests (carry .fixtures/official-ahn/qwen2-s32-w480/{base,ahn-gdn}: all of .fixtures and the tree
  # pass the 64 MiB limit)
  AHN_HARNESS_FIXTURES=$PWD/.fixtures timeout 120 python3 -m pytest -q -m gpu tests/ahn/test_official_parity_gpu.py \
    -k gdn 2>&1 | tail -3
  for tree in . .prev .; do  # each script imports the packages of its own tree
    name=$([ "$tree" = . ] && echo new || echo prev)
    PYTHONPATH="${PYTHONPATH//$PWD/$PWD/$tree}" timeout 130 python3 "$tree/bench/bench_gpu.py" --out "$out/$name" \
      --lengths 131072 --methods ahn-gdn --reps 5 --skip-decode --skip-parity --extra-chunks '' 2>&1 | filter \
      | grep '^| ahn' | sed "s|^|$tree |"
  done
fi
if [ "$mode" = fp32-batched ]; then  # past the window an fp32 prefill compiles FlexAttention's fp32 kernels first
  timeout 560 python3 -m bench.check_batched_ids --out "$out" --dtypes float32 --length 33024 --rows 4 \
    --steps 32 2>&1 | filter
fi
if [ "$mode" = throughput ] || [ "$mode" = all ]; then
  timeout 450 python3 -m bench.bench_throughput --out "$out" --samples 4 --batch 4 --baseline-samples 1 \
    --profile-host 2 2>&1 | filter | grep -E '^\||^profiled'
  host_profile_lines "$out/host_profile.txt"
fi
if [ "$mode" = fused ] || [ "$mode" = all ]; then
  timeout 240 python3 -m pytest -q -m gpu tests/baselines/test_split_attention.py tests/baselines/test_fused_layers.py \
    "tests/baselines/test_static_decode_gpu.py::test_causal_attention_equals_masked_reference" \
    tests/ahn/test_fla_gpu.py -k "split or fused or causal or chunk_graphs" 2>&1 | tail -3
  timeout 330 python3 -m bench.bench_gpu --out "$out/fused" --lengths 131072 --methods ahn-gdn,full --reps 5 \
    --full-chunk 131072 --fused-layers 0,1 --fused-rotary 0,1 --skip-decode --skip-parity --extra-chunks '' 2>&1 \
    | filter | grep '^|'
fi
if [ "$mode" = flex ] || [ "$mode" = all ]; then
  timeout 200 python3 -m pytest -q -m gpu tests/baselines/test_static_decode_gpu.py 2>&1 | tail -3
  timeout 200 python3 -m bench.bench_flex_decode --out "$out/flex" --batches 8,1 2>&1 | filter | grep -E '^\||fastest'
  timeout 150 python3 -m bench.profile_decode --length 40960 --methods ahn-gdn --batches 1,8 \
    --out "$out/decode_profile.jsonl" 2>&1 | filter | grep -v '^{'
fi
if [ "$mode" = profile ] || [ "$mode" = all ]; then
  prefill_profile 200
  timeout 150 python3 -m bench.profile_decode --length 40960 --methods ahn-gdn,swa \
    --out "$out/decode_profile.jsonl" 2>&1 | filter | grep -v '^{'
fi
