"""The AHN paper's scorer (``eval/longbench/eval.py`` of ByteDance-Seed/AHN): LongBench's six tasks (`docs/BENCHMARKS.md` C3)
and its InfiniteBench En.QA / Zh.QA variant (`docs/BENCHMARKS.md` C2).

Every prediction is first cut at the paper's markers, then scored against each reference and the best kept.
QA-F1 is LongBench's English token F1; ROUGE-L is ``rouge`` 1.0.1 on raw text (Chinese: jieba-cut and
space-joined first, no blacklist). The InfiniteBench numbers are therefore not comparable with the official
InfiniteBench table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks.scoring.base import OfficialRaise, ScoreResult, as_list, require_text
from tasks.scoring.normalize import en_tokens, jieba_cut, token_f1
from tasks.scoring.rouge_l import rouge_l_f

#: Cut markers, applied in this order (``\n\nQuestion`` twice, as in the paper's code).
CUT_MARKERS = (".assistant", "\n\nQuestion", "</s>", "(Document", "\n\nQuestion", "\n\nAnswer", "(Passage")


def cut_prediction(prediction: str) -> str:
    """Keep what precedes the first occurrence of each marker in turn, then strip."""
    for marker in CUT_MARKERS:
        prediction = prediction.split(marker)[0]
    return prediction.strip()


def qa_f1_score(prediction: str, ground_truth: str) -> float:
    """LongBench QA-F1: English token F1 after SQuAD normalisation."""
    return token_f1(en_tokens(prediction), en_tokens(ground_truth))


def rouge_score(prediction: str, ground_truth: str) -> float:
    """LongBench ROUGE-L: ``rouge`` 1.0.1 F on the raw, case-sensitive text."""
    return rouge_l_f(prediction, ground_truth)


def rouge_zh_score(prediction: str, ground_truth: str) -> float:
    """LongBench Chinese ROUGE-L: both texts jieba-cut and space-joined, then :func:`rouge_score`."""
    return rouge_l_f(" ".join(jieba_cut(prediction)), " ".join(jieba_cut(ground_truth)))


def _first_line(prediction: str) -> str:
    return prediction.lstrip("\n").split("\n")[0]


def _before_question_zh(prediction: str) -> str:
    return prediction.split("问题：")[0].strip()


#: task → (metric, extra post-processing after the cut markers)
TASKS: dict[str, tuple[Callable[[str, str], float], Callable[[str], str] | None]] = {
    "narrativeqa": (qa_f1_score, None),
    "hotpotqa": (qa_f1_score, None),
    "musique": (qa_f1_score, None),
    "dureader": (rouge_zh_score, _before_question_zh),
    "qmsum": (rouge_score, None),
    "triviaqa": (qa_f1_score, _first_line),
}

#: AHN-paper InfiniteBench tasks → metric (no post-processing beyond the cut markers).
INFINITEBENCH_TASKS: dict[str, Callable[[str, str], float]] = {
    "longbook_qa_eng": rouge_score,
    "longbook_qa_chn": rouge_zh_score,
}


def best_over_answers(metric: Callable[[str, str], float], prediction: str, answers: Any) -> ScoreResult:
    """Max of ``metric`` over the references (0 when there are none), as the LongBench loop does.

    A rouge failure on one reference scores that reference 0.0 (the official ``try``) and the loop goes on;
    the note records it."""
    best, notes = 0.0, []
    for ref in as_list(answers):
        ref = require_text(ref, "answer")
        try:
            best = max(best, metric(prediction, ref))
        except OfficialRaise as exc:
            notes.append(str(exc))
    return ScoreResult(best, "; ".join(dict.fromkeys(notes)) or None)


def score_longbench(task: str, prediction: Any, answers: Any, extra: dict[str, Any]) -> ScoreResult:
    """Score one LongBench sample the way the AHN paper did (cut markers, task post-processing, max)."""
    metric, post = TASKS[task]
    pred = cut_prediction(require_text(prediction))
    if post is not None:
        pred = post(pred)
    return best_over_answers(metric, pred, answers)


def score_ahn_infinitebench(task: str, prediction: Any, answers: Any, extra: dict[str, Any]) -> ScoreResult:
    """Score one InfiniteBench En.QA/Zh.QA sample with the AHN paper's ROUGE-L protocol."""
    pred = cut_prediction(require_text(prediction))
    return best_over_answers(INFINITEBENCH_TASKS[task], pred, answers)
