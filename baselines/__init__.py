"""Memory methods over stock Hugging Face causal LMs: the interface and the training-free baselines.

Exports are resolved lazily so that torch-free parts (`baselines.registry`, `baselines.costs`,
`baselines.model_configs`) import instantly, e.g. for `python -m harness info`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MemoryMethod": "baselines.interface",
    "attach": "baselines.attaching",
    "is_attached": "baselines.interface",
    "make_method": "baselines.registry",
    "method_names": "baselines.registry",
    "register_method": "baselines.registry",
    "FullAttention": "baselines.methods",
    "SinksWindow": "baselines.methods",
    "CompressivePooling": "baselines.methods",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'baselines' has no attribute {name!r}")
