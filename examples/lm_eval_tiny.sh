#!/usr/bin/env bash
# lm-eval on the tiny world through the ahn-harness bridge, offline on a CPU in about a minute: the same four
# passkey prompts under sinks + sliding window (the key has left the window) and under AHN-GDN (it is kept in
# the memory). Results: runs/lm-eval-tiny/<preset>/results_*.json. Needs lm-eval: pip install '.[lmeval]'.
# Extra arguments go to lm-eval (e.g. --log_samples).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
PY=${PYTHON:-python}
for preset in tiny-swa tiny-ahn-gdn; do
  "$PY" -m harness lm-eval run --model ahn-harness --model_args "preset=$preset" --device cpu \
    --tasks ahn_tiny_passkey --include_path examples/lm_eval_tiny --output_path runs/lm-eval-tiny "$@"
done
