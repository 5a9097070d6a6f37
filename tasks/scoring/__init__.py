"""Official-parity scorers for LV-Eval, InfiniteBench, LongBench (AHN subset), the AHN paper's variants and
the synthetic tasks, behind one entry point that never raises on a prediction.

    >>> from tasks.scoring import score
    >>> score("infinitebench/passkey", "The pass key is 01234.", ["01234"])
    1.0

Nothing here imports torch, so ``harness score`` runs anywhere.
"""

from tasks.scoring.base import ScoreResult
from tasks.scoring.registry import ALIASES, TASKS, TaskInfo, known_tasks, resolve_task, score, score_detailed

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
