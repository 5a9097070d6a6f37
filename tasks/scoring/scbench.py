"""Scorers of SCBench's string-retrieval tasks, as its ``compute_scores.py`` defines them (microsoft/MInference,
``scbench/``; `docs/SCBENCH.md`).

* ``kv``, ``prefix_suffix``: SCBench maps both to InfiniteBench's ``kv_retrieval`` (``Multiturnbench_to_
  Infinitebench``), but its ``get_score_one_kv_retrieval`` is not InfiniteBench's: the word split is commented
  out and the test is ``label in pred``, a plain substring test (case-sensitive). InfiniteBench's own rule
  (`tasks/scoring/infinitebench.py`) needs the label as one whole word after splitting at punctuation.
* ``vt``: RULER's ``string_match_all`` (`tasks/scoring/synthetic.py`) rounded to two decimals, as SCBench's copy
  of it returns ``round(score, 2)``.
"""

from __future__ import annotations

from typing import Any

from tasks.scoring.base import OfficialRaise, as_list, require_text
from tasks.scoring.synthetic import string_match_all

METRICS: dict[str, str] = {
    "kv": "label in prediction (SCBench kv_retrieval)",
    "prefix_suffix": "label in prediction (SCBench kv_retrieval)",
    "vt": "string_match_all, rounded to 2 decimals",
}
BINARY = frozenset({"kv", "prefix_suffix"})


def kv_retrieval(prediction: str, label: Any) -> float:
    """SCBench's ``get_score_one_kv_retrieval``: 1.0 when ``label`` is a substring of the prediction."""
    if not isinstance(label, str):  # `label in pred` raises TypeError on a list or a number
        raise OfficialRaise(f"label is {type(label).__name__}, not text: SCBench's `label in pred` raises")
    return 1.0 if label in prediction else 0.0


def string_match_all_2(prediction: str, references: list[Any]) -> float:
    """SCBench's ``string_match_all``: the share of references found (case-insensitive), rounded to 2 places."""
    return round(string_match_all(prediction, references), 2)


def score_scbench(task: str, prediction: Any, answers: Any, extra: dict[str, Any]) -> float:
    """Score one ``scbench/<task>`` answer with SCBench's rule for the task."""
    pred = require_text(prediction)
    if task in ("kv", "prefix_suffix"):
        refs = as_list(answers)
        if len(refs) != 1:
            raise OfficialRaise(f"{task} needs one reference string, got {len(refs)}")
        return kv_retrieval(pred, refs[0])
    if task == "vt":
        return string_match_all_2(pred, as_list(answers))
    raise ValueError(f"not an scbench task: {task!r}; valid: {', '.join(METRICS)}")
