"""docs/ADDING_A_BENCHMARK.md step by step, with the family of tests/plugins/recall_family.py (one file, one
registration line): selection, `harness run` and `harness score` work with it."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.store import load_run

REPO = Path(__file__).resolve().parents[2]
WORDS = ["apple", "river", "candle"]


@pytest.fixture
def recall(monkeypatch):
    """The plugin registered for this test only (its registration line runs into a copy of the registry)."""
    import tasks.family as fam

    fam.families()
    monkeypatch.setattr(fam, "_FAMILIES", dict(fam._FAMILIES))
    import tests.plugins.recall_family as plugin

    importlib.reload(plugin)
    yield plugin
    fam._version += 1  # the registry is restored after this: tables derived from it are rebuilt


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data" / "recall"
    folder.mkdir(parents=True)
    filler = "The grass is green. The sky is blue. " * 12
    lines = [json.dumps({"id": i, "context": f"{filler}The word is {w}. {filler}", "question": "What is the word?",
                         "answer": w}) for i, w in enumerate(WORDS)]
    (folder / "words.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "data"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tests.tiny_models import save_tiny_model_folder

    return save_tiny_model_folder(tmp_path_factory.mktemp("tiny-model"))


def test_steps_1_to_5_make_it_selectable_and_scorable(recall, data_dir, capsys):
    from tasks.registry import load_samples, parse_task_spec, task_settings
    from tasks.scoring import known_tasks

    assert main(["list", "tasks"]) == 0 and "recall" in capsys.readouterr().out
    samples = load_samples("recall:words", data_dir=data_dir, limit=2)
    assert [s.task for s in samples] == ["recall/words"] * 2 and samples[0].answers == ["apple"]
    assert task_settings(samples[0]).max_new_tokens == recall.MAX_NEW_TOKENS
    assert "recall/words" in known_tasks()
    with pytest.raises(ValueError, match="unknown recall task 'nope'; valid: words"):
        parse_task_spec("recall:nope")
    with pytest.raises(ValueError, match="recall has no levels"):
        parse_task_spec("recall:words@4k")


def test_step6_run_and_score(recall, data_dir, model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--model", str(model_dir), "--method", "swa", "--window", "64", "--sinks", "4",
                 "--chunk", "128", "--tasks", "recall:words", "--data-dir", str(data_dir), "--output", str(out),
                 "--no-progress"]) == 0
    records = load_run(out).records
    assert [r["key"] for r in records] == [f"recall/words||{i}" for i in range(3)]
    assert all(r["status"] == "ok" and r["score"] in (0.0, 1.0) for r in records)
    assert all(r["max_new_tokens"] == recall.MAX_NEW_TOKENS for r in records)

    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"prediction": "apple.", "answers": ["apple"]}\n{"prediction": "a pear", "answers": ["pear"]}\n')
    capsys.readouterr()
    assert main(["score", "--task", "recall/words", "--predictions", str(preds)]) == 0
    assert "50.0" in capsys.readouterr().out
    # the run's own result lines rescore to the scores the run recorded
    scored = tmp_path / "rescored.jsonl"
    assert main(["score", "--task", "recall/words", "--predictions", str(out / "samples.jsonl"),
                 "--output", str(scored)]) == 0
    rescored = [json.loads(line)["score"] for line in scored.read_text().splitlines()]
    assert rescored == [r["score"] for r in records]


def test_step6_the_cli_imports_a_plugin_family(tmp_path):
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"prediction": "river", "answers": ["river"]}\n')
    env = {**os.environ, "AHN_HARNESS_PLUGINS": "tests.plugins.recall_family"}
    done = subprocess.run([sys.executable, "-m", "harness", "score", "--task", "recall/words", "--predictions",
                           str(preds)], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "100.0" in done.stdout
