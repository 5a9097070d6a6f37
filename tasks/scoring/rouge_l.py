"""The two ROUGE-L implementations the benchmarks depend on, called through their PyPI packages.

* ``rouge`` 1.0.1 (LV-Eval dureader, LongBench, the AHN paper's InfiniteBench QA): the official scripts call
  ``Rouge().get_scores([hyp], [ref], avg=True)["rouge-l"]["f"]`` inside a bare ``try`` and score 0.0 on any
  exception. Its LCS reconstruction is recursive, so long sentence pairs raise ``RecursionError``; whether they
  do depends on the stack depth at the call. We call it from a fresh thread whose stack is as deep as the
  official script's (about ten frames) under the default recursion limit 1000, so the verdict is the same
  whoever calls us.
* ``rouge_score`` (InfiniteBench En.Sum): HF ``evaluate``'s "rouge" with ``use_aggregator=False`` is
  ``RougeScorer(["rougeLsum"], use_stemmer=False).score_multi(references, prediction)``; we call ``rouge_score``
  directly because ``evaluate.load`` needs the Hub.
"""

from __future__ import annotations

import sys
import threading
from functools import cache
from typing import Any

from tasks.scoring.base import OfficialRaise

#: Python's default recursion limit, under which the official scripts ran.
OFFICIAL_RECURSION_LIMIT = 1000
#: Guard against pathological inputs: rouge 1.0.1 keeps a dict with one entry per LCS cell (about 150 bytes
#: each), so a single sentence pair beyond this many cells would need gigabytes. Real predictions are bounded
#: by max_new_tokens and stay far below it.
MAX_LCS_CELLS = 4_000_000

_limit_lock = threading.Lock()


@cache
def _rouge_l() -> Any:
    from rouge import Rouge

    return Rouge()  # all default metrics, as the official scripts: same verdicts, same error messages


def _sentences(text: str) -> list[list[str]]:
    """rouge 1.0.1's view of a text: split on '.', drop empty pieces, collapse whitespace, split on ' '."""
    return [" ".join(piece.split()).split(" ") for piece in text.split(".") if len(piece) > 0]


def rouge_l_f(hypothesis: str, reference: str) -> float:
    """ROUGE-L F of ``rouge`` 1.0.1; raises :class:`OfficialRaise` where the official ``try`` would score 0.0."""
    if not isinstance(hypothesis, str) or not isinstance(reference, str):
        raise OfficialRaise("rouge got a non-string; the official scorer returns 0.0")
    hyp_sents, ref_sents = _sentences(hypothesis), _sentences(reference)
    if hyp_sents and ref_sents:
        longest_hyp = max(len(h) for h in hyp_sents)
        longest_ref = max(len(r) for r in ref_sents)
        if min(longest_hyp, longest_ref) >= OFFICIAL_RECURSION_LIMIT:
            # The reconstruction path of that sentence pair has at least min(n, m) steps, one frame each:
            # the official call certainly raises, so spare the O(n·m) table.
            raise OfficialRaise(
                f"rouge 1.0.1 raised RecursionError (sentences of {longest_hyp} and {longest_ref} words); "
                "the official scorer returns 0.0"
            )
        if longest_hyp * longest_ref > MAX_LCS_CELLS:
            raise OfficialRaise(
                f"rouge 1.0.1 LCS table of {longest_hyp * longest_ref} cells skipped as too large (the official "
                "scorer would spend gigabytes on it); scored 0"
            )
    outcome: dict[str, Any] = {}

    def work() -> None:
        # Fresh thread: _bootstrap, _bootstrap_inner, run, work = 4 frames, like the official script's
        # <module>, scorer, rouge_zh_score, rouge_score before get_scores. The limit is pinned here, where
        # the stack is shallow, so a deep caller cannot make setrecursionlimit fail.
        with _limit_lock:
            previous = sys.getrecursionlimit()
            sys.setrecursionlimit(OFFICIAL_RECURSION_LIMIT)
            try:
                outcome["f"] = _rouge_l().get_scores([hypothesis], [reference], avg=True)["rouge-l"]["f"]
            except BaseException as exc:  # noqa: BLE001 (the official code has a bare except)
                outcome["error"] = exc
            finally:
                sys.setrecursionlimit(previous)

    worker = threading.Thread(target=work, name="rouge-1.0.1", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        exc = outcome["error"]
        raise OfficialRaise(
            f"rouge 1.0.1 raised {type(exc).__name__}: {exc}; the official scorer returns 0.0"
        )
    return float(outcome["f"])


@cache
def _rouge_lsum_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=False)


def rouge_lsum_f(prediction: str, references: list[str]) -> float:
    """ROUGE-Lsum F of ``rouge_score`` (no stemmer, default tokenizer, sentences split on newlines), max over
    the references, which is what HF ``evaluate`` "rouge" returns for one prediction."""
    for ref in references:
        if not isinstance(ref, str):
            raise OfficialRaise(
                f"reference is not a string ({type(ref).__name__}); the official scorer would raise"
            )
    if not references:
        raise OfficialRaise("no reference summary; the official scorer would raise")
    return float(_rouge_lsum_scorer().score_multi(references, prediction)["rougeLsum"].fmeasure)
