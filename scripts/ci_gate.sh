#!/usr/bin/env bash
# Regression gate: run the embedded default afresh and compare each preset, bucket by bucket, with the
# reference results committed in leaderboards/tiny/default-run (a paired bootstrap; fails on a significant
# drop of more than 1 point).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
ref=leaderboards/tiny/default-run
out=$(mktemp -d)/tiny-default
.venv/bin/python -m harness run --output "$out" --no-progress
status=0
for preset_dir in "$ref"/tiny-*/; do
  name=$(basename "$preset_dir")
  echo "== compare $name"
  .venv/bin/python -m harness compare "$preset_dir" "$out/$name" --max-drop 1.0 || status=1
done
exit $status
