"""Where the tests find the real model's local copy (`python -m harness fetch-model qwen2.5-coder-0.5b`): the
built copy in the model cache (`harness.local_models`), or a folder named by AHN_HARNESS_QWEN_DIR. None when
neither exists; each test that needs it skips then, naming the fetch command."""

from __future__ import annotations

import os
from pathlib import Path

COPY = "qwen2.5-coder-0.5b"
FETCH = f"python -m harness fetch-model {COPY}"


def real_model_dir() -> Path | None:
    chosen = os.environ.get("AHN_HARNESS_QWEN_DIR")
    if chosen:
        return Path(chosen) if (Path(chosen) / "tokenizer.json").is_file() else None
    from harness import local_models

    return local_models.built_copy(COPY)
