"""The task registry, the never-raise contract, RULER string_match_all and the no-torch rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks.sample import Sample
from tasks.scoring import TASKS, ScoreResult, known_tasks, resolve_task, score, score_detailed

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_task_list() -> None:
    names = known_tasks()
    # ... + synthetic passkey_k{1,2,4,8,16} + realtext's five + scbench's three
    assert len(names) == len(TASKS) == 11 + 12 + 2 + 6 + 10 + 5 + 5 + 3
    for name in (
        "lveval/dureader_mixup",
        "infinitebench/code_debug",
        "ahn-paper/longbook_qa_chn",
        "longbench/triviaqa",
        "synthetic/math_calc",
        "synthetic/niah_multiquery",
        "synthetic/passkey_k16",
        "realtext/factrecall_zh",
        "scbench/prefix_suffix",
    ):
        assert name in names
    assert resolve_task("lveval/cmrc_mixup").language == "zh"
    assert resolve_task("infinitebench/longbook_qa_chn").family == "infinitebench"


def test_ahn_paper_lveval_alias_scores_like_lveval() -> None:
    # tasks.ahn_paper names its LV-Eval samples ahn-paper/lveval/<dataset>; the metric is the official one (C1)
    args = ("He died on 4 November 2003.", ["4 November 2003"], {"answer_keywords": "4 November 2003"})
    assert score("ahn-paper/lveval/loogle_SD_mixup", *args) == score("lveval/loogle_SD_mixup", *args)
    assert score("ahn-paper/lveval/factrecall_en_128k", "Ludwig Beethoven", ["Ludwig Beethoven"]) == 1.0
    assert "ahn-paper/lveval/dureader_mixup" not in TASKS  # an alias, not a separate task


def test_unknown_task_names_close_matches() -> None:
    with pytest.raises(ValueError, match="infinitebench/passkey") as info:
        score("infinitebench/passkye", "1", ["1"])
    assert "passkye" in str(info.value)
    with pytest.raises(ValueError, match="synthetic/passkey"):
        resolve_task("passkey")
    with pytest.raises(ValueError, match="Valid tasks"):
        resolve_task("nonsense/zzz")


STRANGE_PREDICTIONS = [
    None,
    42,
    4.5,
    ["a"],
    {"a": 1},
    "",
    " ",
    "...",
    "\x00\n\t",
    "😀" * 50,
    "问题：",
    "The answer is:",
    "a" * 3000,
    " ".join(["word"] * 2000) + " 71432",
]
STRANGE_ANSWERS = [[], None, [None], [""], "plain string", [1.5], [[1, 2]], ["A", "B"], 7, {"k": "v"}]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_never_raises_on_strange_inputs(task: str) -> None:
    for pred in STRANGE_PREDICTIONS:
        for answers in STRANGE_ANSWERS:
            result = score_detailed(task, pred, answers, {"options": ["A", "B"], "answer_keywords": 3})
            assert isinstance(result, ScoreResult)
            assert 0.0 <= result.score <= 1.0, (task, pred, answers, result)


def test_sample_object_accepted() -> None:
    sample = Sample(
        task="infinitebench/longbook_choice_eng",
        id="0",
        level=None,
        prompt="p",
        answers=["Walking Georgie"],
        extra={"options": ["x", "Walking Georgie", "y", "z"]},
    )
    assert score(sample.task, "B. Walking Georgie", sample) == 1.0


# --- synthetic ---------------------------------------------------------------------------------------------


def test_string_match_all() -> None:
    assert score("synthetic/niah_single", "The special magic number is 1234567.", ["1234567"]) == 1.0
    assert score(
        "synthetic/niah_multivalue", "1111111, 2222222, 3", ["1111111", "2222222", "3", "4444444"]
    ) == (0.75)
    assert score("synthetic/niah_multiquery", "ABC-def", ["abc-DEF"]) == 1.0  # case-insensitive substring
    assert score("synthetic/niah_multikey", "nothing", ["7654321"]) == 0.0
    assert score("synthetic/niah_single", "1234567", [1234567]) == 1.0
    empty = score_detailed("synthetic/niah_single", "x", [])
    assert empty.score == 0.0 and empty.note


def test_synthetic_infinitebench_rules() -> None:
    assert score("synthetic/passkey", "The pass key is 01234", ["01234"]) == 1.0
    assert score("synthetic/number_string", "1123456789", ["1123456789"]) == 1.0
    assert score("synthetic/kv_retrieval", 'value "abc-1"', ["abc-1"]) == 1.0
    assert score("synthetic/math_find", "49.5", [49.5]) == 1.0
    assert score("synthetic/math_calc", "5, 7, 2", [5, 7, 3]) == pytest.approx(2 / 3)
    assert score("synthetic/code_run", "The return value is: -3", [-3]) == 1.0


def test_scoring_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "import tasks.scoring, tasks.score_file\n"
        "from tasks.scoring import TASKS, score\n"
        "for name in TASKS:\n"
        "    score(name, 'The answer is 1. 中文回答', ['1'], {'options': ['1', '2', '3', '4']})\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
