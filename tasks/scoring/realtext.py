"""Scorers of the real-text tasks (`docs/REALTEXT.md`).

* ``niah_single``, ``niah_multikey``: RULER's ``string_match_all`` (the share of the references found in the
  prediction as case-insensitive substrings; one reference here, so 0 or 1), as RULER scores its NIAH tasks
  (`tasks/scoring/synthetic.py`).
* ``factrecall_en``, ``factrecall_zh``: LV-Eval's official metric of the dataset of the same name
  (``qa_f1_score`` / ``qa_f1_zh_score`` against ``answers[0]``, `tasks/scoring/lveval.py`).
* ``code_default``: :func:`code_value_match`, exact on the default's value.
"""

from __future__ import annotations

import ast
from typing import Any

from tasks.scoring.base import OfficialRaise, as_list, require_text
from tasks.scoring.lveval import score_lveval
from tasks.scoring.synthetic import string_match_all

METRICS: dict[str, str] = {
    "niah_single": "string_match_all",
    "niah_multikey": "string_match_all",
    "factrecall_en": "qa_f1_score",
    "factrecall_zh": "qa_f1_zh_score",
    "code_default": "code_value_match",
}


def answer_line(prediction: str, reference: str = "") -> str:
    """The first non-empty line of ``prediction``, stripped, without one pair of enclosing backticks and
    without a final ``.`` (unless ``reference`` ends with one)."""
    line = next((x.strip() for x in prediction.splitlines() if x.strip()), "")
    if not reference.endswith("."):
        line = line.removesuffix(".").rstrip()
    if len(line) >= 2 and line[0] == line[-1] == "`":
        line = line[1:-1].strip()
    return line


def _literal(text: str) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def code_value_match(prediction: str, reference: str) -> float:
    """1.0 when :func:`answer_line` of the prediction is the reference's source text, or when both are Python
    literals of the same type and value (``"rb"`` answers ``'rb'``); else 0.0."""
    got = answer_line(prediction, reference)
    if got == reference:
        return 1.0
    ok_got, value_got = _literal(got)
    ok_ref, value_ref = _literal(reference)
    if ok_got and ok_ref and type(value_got) is type(value_ref) and value_got == value_ref:
        return 1.0
    return 0.0


def score_realtext(task: str, prediction: Any, answers: Any, extra: dict[str, Any]) -> float:
    """Score one ``realtext/<task>`` sample with the task's metric (:data:`METRICS`)."""
    if task in ("niah_single", "niah_multikey"):
        return string_match_all(require_text(prediction), answers)
    if task in ("factrecall_en", "factrecall_zh"):
        return score_lveval(task, prediction, answers, extra)
    if task == "code_default":
        refs = as_list(answers)
        if not refs:
            raise OfficialRaise("no reference value")
        return code_value_match(require_text(prediction), require_text(refs[0], "answers[0]"))
    raise ValueError(f"not a realtext task: {task!r}; valid: {', '.join(METRICS)}")
