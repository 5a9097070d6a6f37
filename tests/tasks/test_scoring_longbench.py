"""The AHN paper's LongBench six (docs/BENCHMARKS.md C3) and InfiniteBench En.QA/Zh.QA (C2), and rouge 1.0.1 semantics (A5)."""

from __future__ import annotations

import random
import sys

import pytest

from tasks.scoring import score, score_detailed
from tasks.scoring.longbench import cut_prediction
from tasks.scoring.rouge_l import rouge_l_f

# --- rouge 1.0.1 semantics (hand-computed: unique words, F = 2PR / (P + R + 1e-8)) ---------------------------


def f_rouge(p: float, r: float) -> float:
    return 2 * p * r / (p + r + 1e-8)


def test_rouge_l_hand_values() -> None:
    # 6 unique words each side, LCS "The cat on the mat" = 5
    assert rouge_l_f("The cat sat on the mat", "The cat is on the mat") == pytest.approx(
        f_rouge(5 / 6, 5 / 6)
    )
    # case-sensitive: 'The' != 'the'
    assert rouge_l_f("the cat", "The cat") == pytest.approx(f_rouge(1 / 2, 1 / 2))
    # unique-word counts: 'a a a' has n = 1
    assert rouge_l_f("a a a", "a") == pytest.approx(f_rouge(1, 1))
    # sentences split on '.': LCS unions over hypothesis sentences
    assert rouge_l_f("c d. a b", "a b c d") == pytest.approx(f_rouge(1, 1))


def _words(n: int, seed: int, vocab: int = 1000) -> str:
    """n words drawn from a vocabulary of ``vocab`` (deterministic), so LCS paths zig-zag."""
    rng = random.Random(seed)
    return " ".join(f"w{int(rng.random() * vocab)}" for _ in range(n))


def test_rouge_l_recursion_error_scores_zero() -> None:
    # one 800-word sentence each side: the recursive LCS reconstruction exceeds the default limit
    result = score_detailed("longbench/qmsum", _words(800, 1), [_words(800, 2)])
    assert result.score == 0.0
    assert result.note and "RecursionError" in result.note
    short = score_detailed("longbench/qmsum", _words(300, 1), [_words(300, 2)])
    assert short.note is None and short.score > 0
    # the same words cut into 100-word sentences are fine
    hyp, ref = _sentences(_words(800, 1)), _sentences(_words(800, 2))
    split = score_detailed("longbench/qmsum", hyp, [ref])
    assert split.note is None and split.score > 0


def _sentences(text: str, size: int = 100) -> str:
    words = text.split()
    return ". ".join(" ".join(words[i : i + size]) for i in range(0, len(words), size))


def test_rouge_l_huge_sentences_are_not_computed() -> None:
    long = " ".join(f"w{i}" for i in range(20_000))
    result = score_detailed("longbench/qmsum", long, [long])  # 400M LCS cells: certain RecursionError
    assert result.score == 0.0 and result.note and "RecursionError" in result.note
    lopsided = score_detailed("longbench/qmsum", long, ["w1 " * 300])
    assert lopsided.score == 0.0 and lopsided.note and "too large" in lopsided.note


def test_rouge_l_verdict_does_not_depend_on_caller() -> None:
    hyp, ref = _words(300, 3), _words(300, 4)
    expected = rouge_l_f(hyp, ref)

    def deep(n: int) -> float:
        return rouge_l_f(hyp, ref) if n == 0 else deep(n - 1)

    assert deep(800) == expected  # 800 frames deep + a ~500-step path would overflow in the caller's stack
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(4000)
    try:
        assert (
            score_detailed("longbench/qmsum", _words(800, 1), [_words(800, 2)]).score == 0.0
        )  # limit pinned
        assert sys.getrecursionlimit() == 4000
    finally:
        sys.setrecursionlimit(previous)


# --- cut markers and per-task post-processing --------------------------------------------------------------


def test_cut_markers() -> None:
    assert cut_prediction("  Paris.\n\nQuestion: who?") == "Paris."
    assert cut_prediction("Paris.assistant\nmore") == "Paris"
    assert cut_prediction("Paris</s>junk") == "Paris"
    assert cut_prediction("Paris (Document 3)") == "Paris"
    assert cut_prediction("Paris\n\nAnswer: Lyon") == "Paris"
    assert cut_prediction("Paris (Passage 2)") == "Paris"
    assert cut_prediction("Paris\nLyon") == "Paris\nLyon"


def test_qa_f1_tasks() -> None:
    for task in ("narrativeqa", "hotpotqa", "musique"):
        assert score(f"longbench/{task}", "The Paris Commune.", ["Lyon", "paris commune"]) == 1.0
        assert score(f"longbench/{task}", "Paris\n\nQuestion: and Lyon?", ["Paris"]) == 1.0


def test_triviaqa_first_line_only() -> None:
    assert score("longbench/triviaqa", "\nParis\nAnswer the next one: Lyon", ["Paris"]) == 1.0
    assert score("longbench/triviaqa", "Paris Lyon", ["Paris"]) == pytest.approx(2 / 3)


def test_dureader_cut_and_jieba_rouge() -> None:
    # jieba: 北京 / 是 / 首都 → hypothesis 3 unique words, reference 1: P 1/3, R 1
    assert score("longbench/dureader", "北京是首都问题：下一个", ["北京"]) == pytest.approx(f_rouge(1 / 3, 1))
    assert score("longbench/dureader", "北京", ["北京"]) == pytest.approx(f_rouge(1, 1))


def test_qmsum_rouge_raw_text_max_over_answers() -> None:
    got = score("longbench/qmsum", "The cat sat on the mat", ["dogs", "The cat is on the mat"])
    assert got == pytest.approx(f_rouge(5 / 6, 5 / 6))


def test_empty_prediction_is_noted() -> None:
    result = score_detailed("longbench/qmsum", "\n\nQuestion: x", ["a summary"])
    assert result.score == 0.0
    assert result.note and "Hypothesis is empty" in result.note


# --- AHN-paper InfiniteBench QA (ROUGE-L, not the official token F1) ----------------------------------------


def test_ahn_paper_qa_eng_is_case_sensitive_rouge() -> None:
    assert score(
        "ahn-paper/longbook_qa_eng", "The cat sat on the mat.\n\nQuestion: x", ["The cat is on the mat"]
    ) == (pytest.approx(f_rouge(5 / 6, 5 / 6)))
    # the official En.QA metric would normalise case; the paper's ROUGE-L does not
    assert score("ahn-paper/longbook_qa_eng", "paris", ["Paris"]) == 0.0
    assert score("infinitebench/longbook_qa_eng", "paris", ["Paris"]) == 1.0


def test_ahn_paper_qa_chn_jieba_rouge() -> None:
    assert score("ahn-paper/longbook_qa_chn", "北京是首都", ["上海", "北京"]) == pytest.approx(
        f_rouge(1 / 3, 1)
    )
