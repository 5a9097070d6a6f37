"""InfiniteBench per-task rules (docs/BENCHMARKS.md B5), one behaviour per test."""

from __future__ import annotations

import pytest

from tasks.scoring import score, score_detailed


def ib(task: str, pred: object, label: object, **extra: object) -> float:
    return score(f"infinitebench/{task}", pred, label, dict(extra))


# --- passkey / number_string -------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["passkey", "number_string"])
def test_digit_run_string_equality(task: str) -> None:
    assert ib(task, "The pass key is 71432.", "71432") == 1.0
    assert ib(task, " 71432. Remember it.", ["71432"]) == 1.0  # list label unwrapped
    assert ib(task, "The pass key is 01234.", "01234") == 1.0
    assert ib(task, "The pass key is 1234.", "01234") == 0.0  # leading zeros matter
    assert ib(task, "It is 3,000", "3000") == 0.0  # 3,000 reads 3
    assert ib(task, "It is 3,000", "3") == 1.0
    assert ib(task, "key 12 then 71432", "71432") == 0.0  # the first run only
    assert ib(task, "no digits", "71432") == 0.0


# --- kv_retrieval ------------------------------------------------------------------------------------------

UUID = "c14cb8ba-002b-43be-bdc7-8a83f0fe1ac8"


def test_kv_whole_token() -> None:
    assert ib("kv_retrieval", f'The value is: "{UUID}".', UUID) == 1.0
    assert ib("kv_retrieval", f"{{{UUID}}}", UUID) == 1.0
    assert ib("kv_retrieval", f"`{UUID}`", UUID) == 0.0  # backticks are not separators
    assert ib("kv_retrieval", f"**{UUID}**", UUID) == 0.0
    assert ib("kv_retrieval", f"{UUID}-x", UUID) == 0.0  # '-' is kept, so no whole token
    assert ib("kv_retrieval", UUID[:20], UUID) == 0.0


def test_kv_list_label_is_unwrapped() -> None:
    assert ib("kv_retrieval", f"value: {UUID}", [UUID]) == 1.0


# --- longdialogue_qa_eng -----------------------------------------------------------------------------------


def test_dialogue_uppercase_first_label_only() -> None:
    assert ib("longdialogue_qa_eng", "jim.", ["JIM", "JIM GARRISON"]) == 1.0
    assert (
        ib("longdialogue_qa_eng", " to be Garrison", ["JIM", "JIM GARRISON", "GARRISON"]) == 0.0
    )  # aliases ignored
    assert ib("longdialogue_qa_eng", "Oil Man", ["OIL MAN"]) == 0.0  # multi-word labels never match
    assert ib("longdialogue_qa_eng", "Jimmy", ["JIM"]) == 0.0


# --- longbook_choice_eng -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "label", "expected"),
    [
        ("A. Walking Georgie", ["Walking Georgie", "A"], 1.0),
        ("B. Hall Farm", ["Snowfield", "C"], 0.0),
        ("According to the book, Snowfield.", ["Snowfield", "C"], 0.0),  # leading A-D decides: reads A
        ("According to the book, Snowfield.", ["x", "A"], 1.0),
        ("Carley", ["Carley", "D"], 0.0),  # option text starting with C reads as letter C
        ("Snowfield", ["Snowfield", "C"], 1.0),  # exact option text
        ("The answer is: C", ["Snowfield", "C"], 1.0),
        ("The answer is: Snowfield", ["Snowfield", "C"], 1.0),
        ("I think the option is D.", ["x", "D"], 1.0),
        ("The answer is", ["x", "D"], 0.0),  # prefix at the very end
        ("I pick C because it fits", ["x", "C"], 1.0),  # first word that is a substring of ABCD
        ("I pick CD", ["x", "C"], 0.0),  # 'CD' is a substring of ABCD but not the letter
        ("   ", ["x", "A"], 0.0),
        ("The Answer: C", ["x", "C"], 1.0),  # 'answer:' is case-sensitive, falls back to the word rule
    ],
)
def test_choice_parsing(pred: str, label: list[str], expected: float) -> None:
    assert ib("longbook_choice_eng", pred, label) == expected


def test_choice_get_answer_from_options() -> None:
    options = ["Hall Farm", "Walking Georgie", "Snowfield", "Methodist"]
    assert ib("longbook_choice_eng", "B", ["Walking Georgie"], options=options) == 1.0
    assert ib("longbook_choice_eng", "B", "Walking Georgie", options=options) == 1.0
    missing = score_detailed("infinitebench/longbook_choice_eng", "B", ["Elsewhere"], {"options": options})
    assert missing.score == 0.0 and missing.note


# --- code_debug --------------------------------------------------------------------------------------------

FN = ["repack_carchive", "B"]


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("B. repack_carchive", 1.0),
        ("B: it crashes", 1.0),
        ("B.", 1.0),
        ("B", 0.0),  # a bare letter scores 0
        ("C. repack_carchive", 0.0),
        ("Therefore, the answer is: B", 1.0),
        ("The function with the error is: repack_carchive", 1.0),
        ("The correct option is: B", 1.0),  # 'option' is deleted, leaving 'is:'
        ("The answer is B", 0.0),  # 'answer is' without a colon is not a prefix here
        ("Answer: B", 0.0),  # case-sensitive 'answer:'
        ("answer: `repack_carchive`", 1.0),  # backticks removed
    ],
)
def test_code_debug(pred: str, expected: float) -> None:
    assert ib("code_debug", pred, FN) == expected


# --- math_find ---------------------------------------------------------------------------------------------


def test_math_find_int_and_float_labels() -> None:
    assert ib("math_find", "88", 88) == 1.0
    assert ib("math_find", "The answer is 81.", [81]) == 1.0
    assert ib("math_find", "-5", 5) == 1.0  # minus sign ignored
    assert ib("math_find", "48.0", 48.0) == 1.0
    assert ib("math_find", "48", 48.0) == 1.0
    assert ib("math_find", "49.5", [49.5]) == 1.0
    assert ib("math_find", "49.5", 49.0) == 0.0
    assert ib("math_find", "none", 3) == 0.0


def test_math_find_decimal_for_int_label_is_official_crash() -> None:
    result = score_detailed("infinitebench/math_find", "48.5", [48])
    assert result.score == 0.0
    assert result.note and "ValueError" in result.note


def test_math_find_string_label_is_official_crash() -> None:
    result = score_detailed("infinitebench/math_find", "48", ["48"])
    assert result.score == 0.0
    assert result.note and "TypeError" in result.note


# --- math_calc ---------------------------------------------------------------------------------------------


def test_math_calc_prefix_ratio() -> None:
    assert ib("math_calc", "[1, 3, 6, 11]", [1, 3, 6, 10]) == 0.75
    assert ib("math_calc", "1 3 9 10", [[1, 3, 6, 10]]) == 0.5  # [[...]] label unwrapped
    assert ib("math_calc", "[1, -3]", [1, 3]) == 1.0  # minus signs dropped
    assert ib("math_calc", "", [1, 3]) == 0.0


def test_math_calc_gpt4_drops_first_number() -> None:
    assert ib("math_calc", "0, 1, 3, 6, 10", [1, 3, 6, 10], model_name="gpt4") == 1.0
    assert ib("math_calc", "0, 1, 3, 6, 10", [1, 3, 6, 10]) == 0.0
    assert ib("math_calc", "0, 1, 3, 6, 10", [1, 3, 6, 10], model_name="claude2") == 0.0


def test_math_calc_empty_label_noted() -> None:
    result = score_detailed("infinitebench/math_calc", "1 2", [])
    assert result.score == 0.0 and result.note


# --- code_run ----------------------------------------------------------------------------------------------


def test_code_run_last_word() -> None:
    assert ib("code_run", "The return value is: 42.", 42) == 1.0
    assert ib("code_run", "The value of func_1(3) is -7", [-7]) == 1.0
    assert ib("code_run", "42 is the answer", 42) == 0.0  # last word only
    assert ib("code_run", "`42`", 42) == 1.0
    assert ib("code_run", "", 42) == 0.0


# --- QA and summary ----------------------------------------------------------------------------------------


def test_qa_eng_token_f1_max_over_labels() -> None:
    assert ib("longbook_qa_eng", "The Paris Commune", ["paris", "Paris Commune"]) == 1.0
    assert ib("longbook_qa_eng", "Paris, France", ["Paris"]) == pytest.approx(2 / 3)


def test_qa_chn_character_f1() -> None:
    assert ib("longbook_qa_chn", "北京", ["北京市"]) == pytest.approx(0.8)
    # 《 is not punctuation, 》 is: 《三体 vs 三体 → P 2/3, R 1
    assert ib("longbook_qa_chn", "《三体》", ["三体"]) == pytest.approx(0.8)
    assert ib("longbook_qa_chn", "三体。", ["三体", "刘慈欣"]) == 1.0


def test_sum_is_rouge_lsum_not_rouge_l() -> None:
    # sentences split on newlines: each prediction line matches half of the reference in order
    assert ib("longbook_sum_eng", "c d\na b", ["a b c d"]) == pytest.approx(1.0)
    assert ib("longbook_sum_eng", "c d a b", ["a b c d"]) == pytest.approx(0.5)
    # lowercased, no stemming: P 1, R 1/2
    assert ib("longbook_sum_eng", "The Cats", ["the cats sat down"]) == pytest.approx(2 / 3)
    assert ib("longbook_sum_eng", "The Cat", ["the cats"]) == pytest.approx(0.5)
    assert ib("longbook_sum_eng", "", ["the cats"]) == 0.0


def test_non_string_prediction_is_noted_not_raised() -> None:
    result = score_detailed("infinitebench/passkey", None, "71432")
    assert result.score == 0.0 and result.note and "not a string" in result.note
