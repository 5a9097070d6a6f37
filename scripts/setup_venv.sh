#!/usr/bin/env bash
# Create .venv at the repo root (once) and install the project with its dev extras and `gguf` (the real model's
# conversion, `python -m harness fetch-model`).
# On a machine without a GPU it installs the CPU build of torch first, so pip never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.ahn-harness-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    # the CPU index first (the plain index's Linux wheel is the CUDA build); a mirror or --find-links that holds
    # the CPU wheel (pip.conf) still serves it when download.pytorch.org is out of reach
    .venv/bin/python -m pip install -q --timeout 20 --retries 1 "torch==2.13.0" \
        --index-url https://download.pytorch.org/whl/cpu || .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -c "import sys, torch; sys.exit(torch.version.cuda is not None)" \
        || echo "warning: a CUDA build of torch was installed on a machine without a GPU (several GB)" >&2
  fi
  .venv/bin/python -m pip install -q -e ".[dev,real]"
  touch "$stamp"
fi
