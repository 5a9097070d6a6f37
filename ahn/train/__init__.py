"""The AHN training recipe: self-distillation of AHN modules on a frozen base (`docs/AHN.md` §8).

``python -m ahn.train --config FILE [key=value ...]`` runs it; :func:`train` is the same from Python.
:mod:`ahn.train.tiny_base` pretrains the tiny world's byte-level base model.
"""

from ahn.train.config import (
    ConfigError,
    DataConfig,
    OptimConfig,
    TrainConfig,
    WindowConfig,
    config_hash,
    load_config,
)
from ahn.train.data import DataError
from ahn.train.loop import ResumeError, TrainResult, train
from ahn.train.windows import (
    PAPER_SINK_CANDIDATES,
    PAPER_WINDOW_CANDIDATES,
    Draw,
    WindowError,
    WindowSampler,
    allowed_sinks,
    allowed_totals,
)

__all__ = [
    "PAPER_SINK_CANDIDATES",
    "PAPER_WINDOW_CANDIDATES",
    "ConfigError",
    "DataConfig",
    "DataError",
    "Draw",
    "OptimConfig",
    "ResumeError",
    "TrainConfig",
    "TrainResult",
    "WindowConfig",
    "WindowError",
    "WindowSampler",
    "allowed_sinks",
    "allowed_totals",
    "config_hash",
    "load_config",
    "train",
]
