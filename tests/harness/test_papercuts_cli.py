"""Small things a new user trips on: `score` takes tasks as `run` writes them (`family:name`), `--version`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main

PREDS = [
    {"id": 0, "prediction": "The pass key is 71432.", "ground_truth": "71432"},
    {"id": 1, "prediction": "71433", "ground_truth": ["71432"]},
]


@pytest.fixture
def preds(tmp_path: Path) -> Path:
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PREDS))
    return path


@pytest.mark.parametrize("spelling", ["infinitebench/passkey", "infinitebench:passkey",
                                      "infinitebench:passkey@128k"])
def test_score_takes_the_task_as_run_writes_it(spelling, preds, tmp_path, capsys):
    out = tmp_path / f"scores-{spelling.replace('/', '_').replace(':', '_')}.jsonl"
    assert main(["score", "--task", spelling, "--predictions", str(preds), "--output", str(out)]) == 0
    assert "infinitebench/passkey: 50.00" in capsys.readouterr().out  # 1 of 2 right: the same scorer each way
    assert [json.loads(x)["score"] for x in out.read_text().splitlines()] == [1.0, 0.0]


def test_score_refuses_a_family_alone_and_names_the_form(preds, capsys):
    assert main(["score", "--task", "infinitebench:", "--predictions", str(preds)]) == 2
    err = capsys.readouterr().err
    assert "names a family only" in err and "infinitebench:<name>" in err and "Traceback" not in err
    assert main(["score", "--task", "infinitebench:passkee", "--predictions", str(preds)]) == 2
    assert "Did you mean: infinitebench/passkey" in capsys.readouterr().err


def test_version_flag_is_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        main_help = __import__("harness.cli", fromlist=["build_parser"]).build_parser()
        main_help.parse_args(["--help"])
    assert "--version" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ahn-harness ")
