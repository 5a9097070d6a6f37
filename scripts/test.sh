#!/usr/bin/env bash
# The CPU test suite (GPU-only and slow tests are left out). Extra arguments go to pytest, e.g. `-m slow` for the
# slow ones (tiny-mode runs of the GPU scripts in bench/ and studies/, whose pieces the default run covers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
