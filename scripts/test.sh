#!/usr/bin/env bash
# The CPU test suite (GPU-only tests are skipped). Extra arguments go to pytest, e.g. `-m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
