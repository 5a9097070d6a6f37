"""Scorers of the tiny world's synthetic tasks.

The InfiniteBench-style generators (passkey, number_string, kv_retrieval, math_find, math_calc, code_run) are
scored with InfiniteBench's own rules so that their numbers read the same; the RULER-style needle tasks use
RULER's ``string_match_all`` (`docs/BENCHMARKS.md` D).
"""

from __future__ import annotations

from typing import Any

from tasks.scoring.base import OfficialRaise, as_list, require_text
from tasks.scoring.infinitebench import score_infinitebench
from tasks.synthetic.multi_needle import TASK_NAMES as MULTI_PASSKEY_TASKS

#: synthetic task → InfiniteBench task whose rule scores it
INFINITEBENCH_LIKE = {
    "passkey": "passkey",
    "number_string": "number_string",
    "kv_retrieval": "kv_retrieval",
    "math_find": "math_find",
    "math_calc": "math_calc",
    "code_run": "code_run",
    **{name: "passkey" for name in MULTI_PASSKEY_TASKS},  # k labelled pass keys, one asked
}

NIAH_TASKS = ("niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery")


def string_match_all(prediction: str, references: list[Any]) -> float:
    """RULER ``string_match_all`` for one sample: share of references found in the prediction as
    case-insensitive substrings (non-string references, e.g. numbers, are compared as text)."""
    refs = as_list(references)
    if not refs:
        raise OfficialRaise("no reference values: RULER's string_match_all divides by zero")
    lowered = prediction.lower()
    return sum(1.0 if str(ref).lower() in lowered else 0.0 for ref in refs) / len(refs)


def score_synthetic(task: str, prediction: Any, answers: Any, extra: dict[str, Any]) -> float:
    """Score one synthetic sample: NIAH tasks by ``string_match_all``, the others by InfiniteBench's rule."""
    if task in INFINITEBENCH_LIKE:
        return score_infinitebench(INFINITEBENCH_LIKE[task], prediction, answers, extra)
    if task in NIAH_TASKS:
        return string_match_all(require_text(prediction), answers)
    raise ValueError(f"not a synthetic task: {task!r}")
