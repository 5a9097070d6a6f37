#!/usr/bin/env bash
# Create .venv at the repo root (once) and install the project with its dev extras and `gguf` (the real model's
# conversion, `python -m harness fetch-model`).
# On a machine without a GPU it takes the local CPU wheel of torch first, so pip never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.ahn-harness-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
  .venv/bin/python -m pip install -q -e ".[dev,real]"
  touch "$stamp"
fi
