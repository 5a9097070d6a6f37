#!/usr/bin/env bash
# The main job on the embedded default: the seven tiny presets × synthetic retrieval tasks, offline, on the CPU.
# Writes runs/tiny-default/ (per-preset results + summary, report.md, plots). Re-running resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/python -m harness run "$@"
