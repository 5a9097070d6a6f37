"""Official-parity scorers for LV-Eval, InfiniteBench, LongBench (AHN subset), the AHN paper's variants and
the synthetic tasks, behind one entry point that never raises on a prediction.

    >>> from tasks.scoring import score
    >>> score("infinitebench/passkey", "The pass key is 01234.", ["01234"])
    1.0

Nothing here imports torch, so ``harness score`` runs anywhere.
"""

from tasks.scoring.base import ScoreResult
from tasks.scoring.registry import TaskInfo, known_tasks, resolve_task, score, score_detailed


def __getattr__(name: str):
    """``TASKS`` and ``ALIASES`` of the registered families, as `tasks.scoring.registry` keeps them."""
    if name in ("TASKS", "ALIASES"):
        from tasks.scoring import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALIASES",
    "TASKS",
    "ScoreResult",
    "TaskInfo",
    "known_tasks",
    "resolve_task",
    "score",
    "score_detailed",
]
