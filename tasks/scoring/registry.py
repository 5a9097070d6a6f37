"""Every scorable task by name, and the one entry point that scores a prediction without ever raising on it.

Task names are ``family/name``: ``lveval/<dataset>``, ``infinitebench/<task>``, ``ahn-paper/longbook_qa_eng``
and ``ahn-paper/longbook_qa_chn``, ``longbench/<task>`` and ``synthetic/<task>``, plus those of any family
registered later: each family declares its tasks and scorers (`tasks/family.py`), this module looks them up.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from tasks.family import Scorer, TaskInfo, families, registry_version
from tasks.scoring.base import OfficialRaise, ScoreResult

__all__ = ["Scorer", "TaskInfo", "known_tasks", "resolve_task", "score", "score_detailed"]  # and TASKS, ALIASES

_tables: tuple[int, dict[str, TaskInfo], dict[str, str]] | None = None


def _current() -> tuple[dict[str, TaskInfo], dict[str, str]]:
    """Every family's tasks and aliases, rebuilt when a family has been registered since."""
    global _tables
    fams = families()
    if _tables is None or _tables[0] != registry_version():
        tasks: dict[str, TaskInfo] = {}
        aliases: dict[str, str] = {}
        for family in fams.values():
            tasks.update(family.tasks())
            aliases.update(family.aliases())
        _tables = (registry_version(), tasks, aliases)
    return _tables[1], _tables[2]


def __getattr__(name: str):
    """``TASKS`` (every known task name -> its TaskInfo) and ``ALIASES`` (other names that score like a known
    task, e.g. the AHN paper's ``ahn-paper/lveval/<dataset>``), always those of the registered families."""
    if name == "TASKS":
        return _current()[0]
    if name == "ALIASES":
        return _current()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_LVEVAL_LEVEL = re.compile(r"^(?:ahn-paper/)?(lveval/.+)_(16|32|64|128|256)k$")


def known_tasks() -> list[str]:
    """All task names, sorted."""
    return sorted(_current()[0])


def resolve_task(task: str) -> TaskInfo:
    """The :class:`TaskInfo` of ``task`` (or of its alias); an LV-Eval config name with its level
    (``lveval/cmrc_mixup_16k``) is accepted too. Unknown names raise ``ValueError`` naming the close
    matches and the valid names."""
    tasks, aliases = _current()
    if task in tasks:
        return tasks[task]
    if task in aliases:
        return tasks[aliases[task]]
    level = _LVEVAL_LEVEL.match(task) if isinstance(task, str) else None
    if level and level.group(1) in tasks:
        return tasks[level.group(1)]
    close = difflib.get_close_matches(str(task), [*tasks, *aliases], n=5, cutoff=0.6)
    if not close and isinstance(task, str):
        tail = task.rsplit("/", 1)[-1]
        close = [name for name in tasks if name.rsplit("/", 1)[-1] == tail]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown task {task!r}.{hint} Valid tasks: {', '.join(known_tasks())}")


def _sample_parts(answers: Any, extra: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """Accept a ``tasks.sample.Sample`` (or anything with ``answers`` and ``extra``) in place of the answers."""
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(
            f"extra must be a mapping (answer_keywords, options, model_name...), not {type(extra).__name__}"
        )
    if not isinstance(answers, list | tuple | str | dict) and hasattr(answers, "answers"):
        merged = dict(getattr(answers, "extra", None) or {})
        merged.update(extra or {})
        return answers.answers, merged
    return answers, dict(extra or {})


def score_detailed(
    task: str, prediction: Any, answers: Any, extra: dict[str, Any] | None = None
) -> ScoreResult:
    """Score one prediction; never raises on a strange prediction or reference.

    ``answers`` are the references in the task's form (a ``Sample`` is accepted too); ``extra`` carries
    ``answer_keywords`` (alias ``gold_ans``), ``options``, ``model_name``... Where the official code would
    have raised, the score is 0 and ``note`` says why. Only an unknown task (``ValueError``) or an ``extra``
    that is not a mapping (``TypeError``) raises.
    """
    info = resolve_task(task)
    refs, extras = _sample_parts(answers, extra)
    try:
        outcome = info.scorer(prediction, refs, extras)
    except OfficialRaise as exc:
        return ScoreResult(0.0, str(exc))
    except Exception as exc:  # noqa: BLE001 (a scorer must never stop a run)
        return ScoreResult(0.0, f"scorer failed on this sample ({type(exc).__name__}: {exc}); scored 0")
    result = outcome if isinstance(outcome, ScoreResult) else ScoreResult(float(outcome))
    value = result.score
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        return ScoreResult(0.0 if math.isnan(value) else min(max(value, 0.0), 1.0), result.note)
    return result


def score(task: str, prediction: Any, answers: Any, extra: dict[str, Any] | None = None) -> float:
    """Score in [0, 1] of one prediction (see :func:`score_detailed`)."""
    return score_detailed(task, prediction, answers, extra).score
