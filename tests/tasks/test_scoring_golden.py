"""Golden test: our InfiniteBench scorers on the repository's published prediction files reproduce the official
scorer's table (docs/BENCHMARKS.md B6) to two decimals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.score_file import score_predictions

MODELS = ("gpt4", "yarn-mistral", "kimi", "claude2", "yi-6b-200k", "yi-34b-200k", "chatglm3")

# B6, ×100; None = no table value ("(file corrupt)" or "n/a": file absent)
TABLE: dict[str, tuple[float | None, ...]] = {
    "passkey": (100.00, 92.71, 98.14, 97.80, 100.00, 100.00, 92.20),
    "number_string": (100.00, 56.61, 95.42, 98.14, 94.92, 100.00, 80.68),
    "kv_retrieval": (89.00, 0.00, 53.60, 65.40, 0.00, 0.00, 0.00),
    "longdialogue_qa_eng": (8.50, 7.50, 11.50, 46.50, 3.50, 4.50, 2.50),
    "longbook_sum_eng": (14.73, 9.06, 17.96, 14.50, 0.92, 1.33, 0.84),
    "longbook_choice_eng": (67.25, 27.95, 72.49, 62.88, 36.68, 38.43, 10.48),
    "longbook_qa_eng": (22.44, 9.55, 16.52, 11.97, 9.20, 12.17, 3.62),
    "longbook_qa_chn": (25.96, None, 17.93, 9.64, 15.07, 13.61, 2.50),
    "math_find": (60.00, 17.14, 12.57, 32.29, 4.29, 25.71, 7.71),
    "math_calc": (0.01, None, 0.00, 0.00, 0.00, 0.00, 0.00),
    "code_run": (23.25, 1.25, 2.00, 2.50, 0.75, 1.75, 0.00),
    "code_debug": (37.06, 15.48, 17.77, 2.28, 9.14, 13.96, 7.36),
}

# The whole table takes ~25 s on 2 cores, most of it rouge_score's pure-Python LCS on four summary files.
CELLS = [
    pytest.param(task, model, value, id=f"{model}-{task}")
    for task, row in TABLE.items()
    for model, value in zip(MODELS, row)
    if value is not None
]


def _results(root: Path) -> Path:
    return root / "infinitebench" / "results"


def test_prediction_files_are_all_there(shared_fixtures: Path) -> None:
    files = sorted(_results(shared_fixtures).glob("*/preds_*.jsonl"))
    assert len(files) == 84  # 7 × 12, minus yarn-mistral math_calc, plus gpt4 code_debug_step_by_step
    assert not (_results(shared_fixtures) / "yarn-mistral" / "preds_math_calc.jsonl").exists()
    tasks = {f.stem.removeprefix("preds_") for f in files}
    assert tasks == set(TABLE) | {"code_debug_step_by_step"}


@pytest.mark.parametrize(("task", "model", "expected"), CELLS)
def test_golden_table(shared_fixtures: Path, task: str, model: str, expected: float) -> None:
    path = _results(shared_fixtures) / model / f"preds_{task}.jsonl"
    report = score_predictions(f"infinitebench/{task}", path, model_name=model)
    assert report.skipped == []
    assert report.n_official_would_raise == 0
    assert report.mean == pytest.approx(expected, abs=1e-9), (model, task, report.mean)


def test_corrupt_last_line_is_reported_and_skipped(shared_fixtures: Path) -> None:
    path = _results(shared_fixtures) / "yarn-mistral" / "preds_longbook_qa_chn.jsonl"
    report = score_predictions("infinitebench/longbook_qa_chn", path, model_name="yarn-mistral")
    assert report.n_scored == 188
    assert len(report.skipped) == 1
    line, reason = report.skipped[0]
    assert line == 189 and "JSON" in reason
    assert 0.0 <= report.mean <= 100.0


def test_gpt4_step_by_step_code_debug_scores(shared_fixtures: Path) -> None:
    # Not in the table (the README's GPT-4 Code.Debug row is the plain file); it must still score cleanly.
    path = _results(shared_fixtures) / "gpt4" / "preds_code_debug_step_by_step.jsonl"
    report = score_predictions("infinitebench/code_debug", path, model_name="gpt4")
    assert report.n_scored == 394 and report.skipped == []
    assert 0.0 < report.mean < 100.0


def test_math_calc_needs_the_gpt4_quirk(shared_fixtures: Path) -> None:
    path = _results(shared_fixtures) / "gpt4" / "preds_math_calc.jsonl"
    assert score_predictions("infinitebench/math_calc", path, model_name="gpt4").mean == 0.01
    assert score_predictions("infinitebench/math_calc", path).mean == 0.0
