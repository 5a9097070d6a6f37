"""AHN (Artificial Hippocampus Networks, arXiv 2510.07318): cells, kernels and checkpoint I/O.

Attaching AHN to a model lives in :mod:`ahn.method`; the training recipe in :mod:`ahn.train`.
Importing this package never imports fla (the GPU fast path is loaded lazily, for CUDA inputs only).
"""

from ahn.cells import (
    AHN_IMPLEMENTATIONS,
    CELL_KINDS,
    AHNCell,
    DeltaNetCell,
    GatedDeltaNetCell,
    GroupLinear,
    Mamba2Cell,
    count_parameters,
    make_cell,
)
from ahn.checkpoint import (
    BASE_MODELS,
    LAYER_IMPLEMENTATIONS,
    RELEASED_CHECKPOINTS,
    RELEASED_REPO_IDS,
    AHNCheckpointConfig,
    AHNCheckpointError,
    load_ahn_state_dict,
    read_ahn_config,
    save_ahn_checkpoint,
)

__all__ = [
    "AHN_IMPLEMENTATIONS",
    "BASE_MODELS",
    "CELL_KINDS",
    "LAYER_IMPLEMENTATIONS",
    "RELEASED_CHECKPOINTS",
    "RELEASED_REPO_IDS",
    "AHNCell",
    "AHNCheckpointConfig",
    "AHNCheckpointError",
    "DeltaNetCell",
    "GatedDeltaNetCell",
    "GroupLinear",
    "Mamba2Cell",
    "count_parameters",
    "load_ahn_state_dict",
    "make_cell",
    "read_ahn_config",
    "save_ahn_checkpoint",
]
