"""LV-Eval scorers against the official functions' outputs (docs/BENCHMARKS.md A7) and the A5 quirks."""

from __future__ import annotations

import pytest

from tasks.scoring import score, score_detailed
from tasks.scoring.lveval import ABANDON_WORDS_EN, ABANDON_WORDS_ZH
from tasks.scoring.normalize import jieba_cut, normalize_en, normalize_zh

MARTIN = "Martin began independent publishing her books as digital books in 2020."
NO_MENTION = (
    "There is no mention of Martin or independent publishing of digital books in the passage. The passage "
    "appears to be about a research paper on contour completion using deep structure priors."
)
DIRECTOR_GT = "《毕业风暴》的导演是罗马尼亚导演克里斯汀穆基。"

EN_GATED = [
    ("4 November 2003", "4 November 2003", "4 November 2003", 1.0),
    ("9 December 1988", "4 November 2003", "4 November 2003", 0.0),
    ("He died on 4 November 2003.", "4 November 2003", "4 November 2003", 0.666667),
    ("In 2020.", MARTIN, "2020", 0.307692),
    (NO_MENTION, MARTIN, "2020", 0.0),
    (
        "For services to Medicine and to the community in the Cayman Islands.",
        "For his services to music.",
        "services to music",
        0.4,
    ),
    (
        "Low mechanical flexibility.",
        "Increased mechanical flexibility.",
        "Increased mechanical flexibility.",
        0.666667,
    ),
]


@pytest.mark.parametrize(
    "dataset",
    ["loogle_SD_mixup", "multifieldqa_en_mixup", "loogle_CR_mixup", "loogle_MIR_mixup", "hotpotwikiqa_mixup"],
)
@pytest.mark.parametrize(("pred", "gt", "kw", "expected"), EN_GATED)
def test_en_gated_vectors(dataset: str, pred: str, gt: str, kw: str, expected: float) -> None:
    assert score(f"lveval/{dataset}", pred, [gt], {"answer_keywords": kw}) == pytest.approx(
        expected, abs=1e-6
    )


def test_en_gate_alias_and_ungated() -> None:
    # gold_ans is the official prediction files' name for the keywords
    assert score("lveval/loogle_SD_mixup", NO_MENTION, [MARTIN], {"gold_ans": "2020"}) == 0.0
    # without keywords there is no gate: plain F1 (the A7 "ungated 0.3077")
    assert score("lveval/loogle_SD_mixup", NO_MENTION, [MARTIN]) == pytest.approx(0.307692, abs=1e-6)
    assert score("lveval/loogle_SD_mixup", NO_MENTION, [MARTIN], {"answer_keywords": ""}) == pytest.approx(
        0.307692, abs=1e-6
    )


def test_en_gate_denominator_counts_blacklisted_words() -> None:
    gt = "music"
    # keyword tokens: and to of in music → 'music' found, 1/5 = 0.2, not < 0.2: passes
    assert score("lveval/loogle_SD_mixup", "music", [gt], {"answer_keywords": "and to of in music"}) == 1.0
    # 1/6 < 0.2: gated although the only content word is found
    assert (
        score("lveval/loogle_SD_mixup", "music", [gt], {"answer_keywords": "and to of in her music"}) == 0.0
    )
    # a blacklisted keyword found in the prediction does not count as found
    assert (
        score("lveval/loogle_SD_mixup", "of", ["music of Bach"], {"answer_keywords": "music of Bach"}) == 0.0
    )


def test_en_f1_after_gate_keeps_blacklist_words() -> None:
    # gate 1/3 passes; F1 uses the full answer, 'of' included: P = 1, R = 2/3
    got = score("lveval/loogle_SD_mixup", "music of", ["music of Bach"], {"answer_keywords": "music of Bach"})
    assert got == pytest.approx(0.8)


def test_en_keywords_without_tokens_divide_by_zero() -> None:
    result = score_detailed("lveval/loogle_SD_mixup", "anything", ["x"], {"answer_keywords": "..."})
    assert result.score == 0.0
    assert result.note and "divides by zero" in result.note


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("Ludwig Beethoven.", 1.0),
        ("David Beckham.", 0.0),
        ("The scientist is Ludwig Beethoven, who developed E=mc2.", 0.444444),
    ],
)
def test_qa_f1_score_factrecall_en(pred: str, expected: float) -> None:
    assert score("lveval/factrecall_en", pred, ["Ludwig Beethoven"]) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("pred", "expected"), [("贝多芬。", 1.0), ("贝克汉姆。", 0.0)])
def test_qa_f1_zh_score_factrecall_zh(pred: str, expected: float) -> None:
    assert score("lveval/factrecall_zh", pred, ["贝多芬"]) == expected


@pytest.mark.parametrize("dataset", ["cmrc_mixup", "multifieldqa_zh_mixup", "lic_mixup"])
@pytest.mark.parametrize(
    ("pred", "kw", "expected"),
    [
        (
            "根据文章26中的内容，电影《毕业风暴》的导演是提莫·贝克曼贝托夫（TimurBekmambetov）。",
            "克里斯汀穆基",
            0.0,
        ),
        ("克里斯汀穆基", "克里斯汀穆基", 0.428571),
        ("导演是克里斯汀穆基", None, 0.0),  # gate on the whole answer: 4/11 < 0.4 since 《 counts
        ("罗马尼亚导演克里斯汀穆基", None, 0.625),
    ],
)
def test_zh_gated_vectors(dataset: str, pred: str, kw: str | None, expected: float) -> None:
    extra = {} if kw is None else {"answer_keywords": kw}
    assert score(f"lveval/{dataset}", pred, [DIRECTOR_GT], extra) == pytest.approx(expected, abs=1e-6)


def test_zh_empty_keywords_fall_back_to_answer() -> None:
    got = score("lveval/cmrc_mixup", "导演是克里斯汀穆基", [DIRECTOR_GT], {"gold_ans": ""})
    assert got == 0.0


def test_jieba_and_zh_normalisation_facts() -> None:
    assert jieba_cut("克里斯汀穆基") == ["克里斯", "汀", "穆基"]
    assert normalize_zh("《毕业风暴》的 导演。") == "《毕业风暴的导演"  # 《 kept, 》 removed, spaces deleted
    assert normalize_en("The “Quoted” a-b, An apple.") == "“quoted” ab apple"  # curly quotes survive


def test_dureader_rouge_blacklist_vectors() -> None:
    gt = "中国的文学受到印度的影响，主要是佛教。"
    got = score("lveval/dureader_mixup", "中国文学自印度文学大量吸收营养，在佛教东流之后。", [gt])
    assert got == pytest.approx(0.4999999953, abs=1e-9)
    empty = score_detailed("lveval/dureader_mixup", "", [gt])
    assert empty.score == 0.0
    assert empty.note and "Hypothesis is empty" in empty.note


def test_only_first_answer_is_scored() -> None:
    assert score("lveval/factrecall_en", "Ludwig Beethoven", ["David Beckham", "Ludwig Beethoven"]) == 0.0
    assert score("lveval/factrecall_en", "Ludwig Beethoven", []) == 0.0


def test_level_suffix_accepted() -> None:
    assert score("lveval/factrecall_en_256k", "Ludwig Beethoven", ["Ludwig Beethoven"]) == 1.0


def test_blacklists_have_spec_sizes() -> None:
    assert len(ABANDON_WORDS_EN) == 38
    assert len(ABANDON_WORDS_ZH) == 85
