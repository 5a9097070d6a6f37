"""AHN (Artificial Hippocampus Networks, arXiv 2510.07318): cells, kernels and checkpoint I/O.

Attaching AHN to a model lives in :mod:`ahn.method`; the training recipe in :mod:`ahn.train`; the cell table in
:mod:`ahn.layout` and the cost model in :mod:`ahn.costs` (both torch-free). Exports are resolved lazily, so
importing a torch-free part (``ahn.costs`` for ``harness info``) never imports torch, and importing this package
never imports fla (the GPU fast path is loaded lazily, for CUDA inputs only).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    **{name: "ahn.cells" for name in ("AHN_IMPLEMENTATIONS", "AHNCell", "DeltaNetCell", "GatedDeltaNetCell",
                                      "GroupLinear", "Mamba2Cell", "count_parameters", "make_cell")},
    "CELL_KINDS": "ahn.layout",
    **{name: "ahn.checkpoint" for name in ("BASE_MODELS", "LAYER_IMPLEMENTATIONS", "RELEASED_CHECKPOINTS",
                                           "RELEASED_REPO_IDS",
                                           "AHNCheckpointConfig", "AHNCheckpointError",
                                           "load_ahn_state_dict", "read_ahn_config", "save_ahn_checkpoint")},
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ahn' has no attribute {name!r}")
