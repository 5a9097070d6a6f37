"""Scorers of the real-text tasks (`docs/REALTEXT.md`).

* ``niah_single``, ``niah_multikey``: RULER's ``string_match_all`` (the share of the references found in the
  prediction as case-insensitive substrings; one reference here, so 0 or 1), as RULER scores its NIAH tasks
  (`tasks/scoring/synthetic.py`).
* ``factrecall_en``, ``factrecall_zh``: LV-Eval's official metric of the dataset of the same name
  (``qa_f1_score`` / ``qa_f1_zh_score`` against ``answers[0]``, `tasks/scoring/lveval.py`).
* ``code_default``: :func:`code_value_match`, exact on the default's value. The stated value is the
  prediction's first non-empty line as a whole (one pair of enclosing backticks and a final ``.`` dropped),
  or else that line's LAST inline code span (text between backticks): a sentence that names the parameter
  and the function in backticks puts the value last ("The default value of the parameter `mode` of the
  function `which` is `os.F_OK | os.X_OK`."). Only that one span is compared, never "any span", so listing
  several values does not win; a value stated without backticks ("an empty string") is not read.
"""

from __future__ import annotations

import ast
import re
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


# A CommonMark inline code span: a run of n backticks, then text, then a run of exactly n backticks.
_CODE_SPAN = re.compile(r"(?<!`)(`+)(.+?)(?<!`)\1(?!`)")


def last_code_span(prediction: str) -> str | None:
    """The content (stripped) of the last inline code span of the first non-empty line of ``prediction``, or
    None when that line has none. Spans are read left to right without overlap, as Markdown reads them."""
    line = next((x.strip() for x in prediction.splitlines() if x.strip()), "")
    spans = [m.group(2).strip() for m in _CODE_SPAN.finditer(line)]
    return spans[-1] if spans else None


def _literal(text: str) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _same_value(got: str, reference: str) -> bool:
    """``got`` is the reference's source text, or both are Python literals of the same type and value."""
    if got == reference:
        return True
    ok_got, value_got = _literal(got)
    ok_ref, value_ref = _literal(reference)
    return ok_got and ok_ref and type(value_got) is type(value_ref) and value_got == value_ref


def code_value_match(prediction: str, reference: str) -> float:
    """1.0 when the stated value is the reference: :func:`answer_line` of the prediction, or else the
    :func:`last_code_span` of that line, is the reference's source text, or both are Python literals of the
    same type and value (``"rb"`` answers ``'rb'``); else 0.0."""
    if _same_value(answer_line(prediction, reference), reference):
        return 1.0
    span = last_code_span(prediction)
    return 1.0 if span is not None and _same_value(span, reference) else 0.0


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
