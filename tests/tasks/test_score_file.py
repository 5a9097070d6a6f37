"""``harness score`` on files: the three input formats, the per-line output, and bad inputs (clear message,
reported skip, exit code, never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.score_file import ScoreFileError, main, score_predictions


def write_lines(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_infinitebench_format_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preds = write_lines(
        tmp_path / "preds_passkey.jsonl",
        [
            {"id": 0, "prediction": "The pass key is 71432.", "ground_truth": "71432"},
            {"id": 1, "pred": "71433", "label": ["71432"]},
            {"id": 2, "prediction": "01234", "ground_truth": ["01234"]},
            {"id": 3, "prediction": "1234", "ground_truth": ["01234"]},
        ],
    )
    out_path = tmp_path / "out" / "scores.jsonl"
    code, out, _ = run_main(
        ["--task", "infinitebench/passkey", "--predictions", str(preds), "--output", str(out_path)], capsys
    )
    assert code == 0
    assert "50.00" in out
    rows = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    assert [r["score"] for r in rows] == [1.0, 0.0, 1.0, 0.0]
    assert [r["line"] for r in rows] == [1, 2, 3, 4]


def test_lveval_format_with_keywords(tmp_path: Path) -> None:
    preds = write_lines(
        tmp_path / "loogle.jsonl",
        [
            {
                "pred": "In 2020.",
                "answers": ["Martin began independent publishing her books as digital books in 2020."],
                "gold_ans": "2020",
                "input": "q",
                "all_classes": None,
                "length": 1,
            },
            {
                "pred": "Something else entirely.",
                "answers": ["Martin began independent publishing in 2020."],
                "gold_ans": "2020",
            },
        ],
    )
    report = score_predictions("lveval/loogle_SD_mixup", preds)
    assert report.n_scored == 2
    assert report.mean == round(100 * (0.3076923076923077 + 0.0) / 2, 2) == 15.38


def test_harness_record_format(tmp_path: Path) -> None:
    options = ["x", "Walking Georgie", "y", "z"]
    preds = write_lines(
        tmp_path / "samples.jsonl",
        [
            {"id": "a", "prediction": "B", "answers": ["Walking Georgie"], "extra": {"options": options}},
            {"id": "b", "prediction": "C", "answers": ["Walking Georgie"], "extra": {"options": options}},
        ],
    )
    report = score_predictions("infinitebench/longbook_choice_eng", preds)
    assert (report.n_scored, report.mean, report.n_official_would_raise) == (2, 50.0, 0)
    calc = write_lines(tmp_path / "calc.jsonl", [{"prediction": "0, 1, 3", "answers": [1, 3]}])
    assert score_predictions("infinitebench/math_calc", calc).mean == 0.0
    assert score_predictions("infinitebench/math_calc", calc, model_name="gpt4").mean == 100.0


def test_corrupt_lines_are_reported_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = json.dumps({"id": 0, "prediction": "71432", "ground_truth": "71432"}).encode()
    lines = [
        good,
        b'{"id": 1, "prediction": "7143',  # truncated JSON
        json.dumps({"id": 2, "prediction": "1"}).encode(),  # no reference
        b'{"id": 3, "prediction": "\xff\xfe", "ground_truth": "1"}',  # not UTF-8
        b"",  # blank lines are not records
        json.dumps({"id": 4, "ground_truth": "1"}).encode(),  # no prediction
        b"[1, 2]",
        json.dumps({"id": 5, "prediction": "no", "ground_truth": "71432"}).encode(),
    ]
    preds = tmp_path / "mixed.jsonl"
    preds.write_bytes(b"\n".join(lines) + b"\n")
    out_path = tmp_path / "scores.jsonl"
    code, out, err = run_main(
        ["--task", "infinitebench/passkey", "--predictions", str(preds), "--output", str(out_path)], capsys
    )
    assert code == 0
    assert "50.00" in out  # two scored lines: 1 and 0
    for number, word in [(2, "JSON"), (3, "answers"), (4, "UTF-8"), (6, "prediction"), (7, "object")]:
        assert f"line {number} skipped" in err and word in err
    rows = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 6, 7, 8]
    assert [r["score"] for r in rows] == [1.0, None, None, None, None, None, 0.0]
    report = score_predictions("infinitebench/passkey", preds)
    assert [n for n, _ in report.skipped] == [2, 3, 4, 6, 7]
    assert report.n_scored == 2


def test_official_raise_is_counted(tmp_path: Path) -> None:
    preds = write_lines(
        tmp_path / "find.jsonl",
        [
            {"id": 0, "prediction": "48.5", "ground_truth": 48},
            {"id": 1, "prediction": "48", "ground_truth": 48},
        ],
    )
    report = score_predictions("infinitebench/math_find", preds)
    assert report.n_official_would_raise == 1
    assert report.mean == 50.0


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for content in (b"", b"\n  \n"):
        empty = tmp_path / "empty.jsonl"
        empty.write_bytes(content)
        code, _, err = run_main(["--task", "infinitebench/passkey", "--predictions", str(empty)], capsys)
        assert code == 2
        assert "empty" in err
    with pytest.raises(ScoreFileError, match="empty"):
        score_predictions("infinitebench/passkey", empty)


def test_no_readable_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"not json\n")
    code, _, err = run_main(["--task", "infinitebench/passkey", "--predictions", str(bad)], capsys)
    assert code == 2
    assert "no line" in err and "line 1" in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(
        ["--task", "infinitebench/passkey", "--predictions", str(tmp_path / "nope.jsonl")], capsys
    )
    assert code == 2
    assert "not found" in err and "nope.jsonl" in err
    code, _, err = run_main(["--task", "infinitebench/passkey", "--predictions", str(tmp_path)], capsys)
    assert code == 2 and "not a file" in err


def test_unknown_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preds = write_lines(tmp_path / "p.jsonl", [{"prediction": "1", "ground_truth": "1"}])
    code, _, err = run_main(["--task", "infinitebench/paskey", "--predictions", str(preds)], capsys)
    assert code == 2
    assert "unknown task 'infinitebench/paskey'" in err and "infinitebench/passkey" in err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main([], capsys)
    assert code == 2 and "--task" in err
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0 and "--predictions" in out


def test_output_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preds = write_lines(tmp_path / "p.jsonl", [{"id": 7, "prediction": "1", "ground_truth": "1"}])
    code, out, err = run_main(
        ["--task", "infinitebench/passkey", "--predictions", str(preds), "--output", "-"], capsys
    )
    assert code == 0
    assert json.loads(out.splitlines()[0]) == {"line": 1, "id": 7, "score": 1.0}
    assert "100.00" in err
