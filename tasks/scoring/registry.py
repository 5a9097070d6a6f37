"""Every scorable task by name, and the one entry point that scores a prediction without ever raising on it.

Task names are ``family/name``: ``lveval/<dataset>``, ``infinitebench/<task>``, ``ahn-paper/longbook_qa_eng``
and ``ahn-paper/longbook_qa_chn``, ``longbench/<task>`` and ``synthetic/<task>``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from tasks.scoring import infinitebench, longbench, lveval, synthetic
from tasks.scoring.base import OfficialRaise, ScoreResult

Scorer = Callable[[Any, Any, dict[str, Any]], "float | ScoreResult"]


@dataclass(frozen=True)
class TaskInfo:
    """What scores a task and how, for listings and reports."""

    name: str
    metric: str
    language: str
    scorer: Scorer

    @property
    def family(self) -> str:
        return self.name.split("/", 1)[0]


def _build() -> dict[str, TaskInfo]:
    tasks: dict[str, TaskInfo] = {}
    for dataset, (metric, lang) in lveval.DATASETS.items():
        tasks[f"lveval/{dataset}"] = TaskInfo(
            f"lveval/{dataset}", metric.__name__, lang, partial(lveval.score_lveval, dataset)
        )
    ib_metrics = {
        "passkey": "first digit run == label",
        "number_string": "first digit run == label",
        "kv_retrieval": "label in cleaned words",
        "longbook_sum_eng": "ROUGE-Lsum F (rouge_score)",
        "longbook_choice_eng": "option parsing",
        "longbook_qa_eng": "token F1",
        "longbook_qa_chn": "character F1",
        "longdialogue_qa_eng": "label[0] in uppercased words",
        "math_find": "first number == label",
        "math_calc": "correct-prefix ratio",
        "code_run": "int(last word) == label",
        "code_debug": "option parsing",
    }
    for task in infinitebench.TASK_NAMES:
        lang = "zh" if task == "longbook_qa_chn" else "en"
        tasks[f"infinitebench/{task}"] = TaskInfo(
            f"infinitebench/{task}", ib_metrics[task], lang, partial(infinitebench.score_infinitebench, task)
        )
    for task in longbench.INFINITEBENCH_TASKS:
        lang = "zh" if task.endswith("chn") else "en"
        tasks[f"ahn-paper/{task}"] = TaskInfo(
            f"ahn-paper/{task}",
            "ROUGE-L F (rouge 1.0.1)" + (", jieba-joined" if lang == "zh" else ""),
            lang,
            partial(longbench.score_ahn_infinitebench, task),
        )
    for task, (metric, _) in longbench.TASKS.items():
        lang = "zh" if task == "dureader" else "en"
        tasks[f"longbench/{task}"] = TaskInfo(
            f"longbench/{task}", metric.__name__, lang, partial(longbench.score_longbench, task)
        )
    for task, ib_task in synthetic.INFINITEBENCH_LIKE.items():
        tasks[f"synthetic/{task}"] = TaskInfo(
            f"synthetic/{task}", ib_metrics[ib_task], "en", partial(synthetic.score_synthetic, task)
        )
    for task in synthetic.NIAH_TASKS:
        tasks[f"synthetic/{task}"] = TaskInfo(
            f"synthetic/{task}", "string_match_all", "en", partial(synthetic.score_synthetic, task)
        )
    return tasks


#: Every known task name → its :class:`TaskInfo`.
TASKS: dict[str, TaskInfo] = _build()

#: Other names that score like a known task: the AHN paper's LV-Eval runs (``tasks.ahn_paper`` names them
#: ``ahn-paper/lveval/<dataset>``) use the official LV-Eval metrics (`docs/BENCHMARKS.md` C1).
ALIASES: dict[str, str] = {f"ahn-paper/{name}": name for name in TASKS if name.startswith("lveval/")}

_LVEVAL_LEVEL = re.compile(r"^(?:ahn-paper/)?(lveval/.+)_(16|32|64|128|256)k$")


def known_tasks() -> list[str]:
    """All task names, sorted."""
    return sorted(TASKS)


def resolve_task(task: str) -> TaskInfo:
    """The :class:`TaskInfo` of ``task`` (or of its alias); an LV-Eval config name with its level
    (``lveval/cmrc_mixup_16k``) is accepted too. Unknown names raise ``ValueError`` naming the close
    matches and the valid names."""
    if task in TASKS:
        return TASKS[task]
    if task in ALIASES:
        return TASKS[ALIASES[task]]
    level = _LVEVAL_LEVEL.match(task) if isinstance(task, str) else None
    if level and level.group(1) in TASKS:
        return TASKS[level.group(1)]
    close = difflib.get_close_matches(str(task), [*TASKS, *ALIASES], n=5, cutoff=0.6)
    if not close and isinstance(task, str):
        tail = task.rsplit("/", 1)[-1]
        close = [name for name in TASKS if name.rsplit("/", 1)[-1] == tail]
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
