"""`harness rescore`: a run's stored predictions scored again, only `score` changes, and what it refuses."""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main

TASK = "synthetic/passkey"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run of the tiny full-attention preset on the CPU: 2 passkey samples, answers cut at 4 tokens."""
    out = tmp_path_factory.mktemp("rescore") / "run"
    assert main(["run", "--model", "tiny-full", "--tasks", "synthetic:passkey@512", "--limit", "2",
                 "--max-new-tokens", "4", "--output", str(out), "--no-progress", "-q"]) == 0
    return out


@pytest.fixture
def run(tiny_run, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(tiny_run, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest


def _lines(run: Path) -> list[bytes]:
    return (run / "samples.jsonl").read_bytes().splitlines(keepends=True)


def _doctor(run: Path, index: int, **changes) -> None:
    """Change fields of one record, written as the store writes a line (the other lines keep their bytes)."""
    from harness.store import encode_record

    lines = _lines(run)
    rec = json.loads(lines[index])
    rec.update(changes)
    lines[index] = encode_record(rec)
    (run / "samples.jsonl").write_bytes(b"".join(lines))


def _cell(run: Path) -> dict:
    rows = json.loads((run / "summary.json").read_text())["rows"]
    return next(r for r in rows if r["task"] == TASK and r["bucket"] == "512")


def test_rescore_changes_only_the_doctored_score(run, capsys):
    before = [json.loads(x) for x in _lines(run)]
    assert len(before) == 2 and all(r["status"] == "ok" for r in before)
    # The doctored prediction states the pass key: the passkey scorer gives 1.0 (its reference is in it),
    # while the stored score stays what the run's own prediction got.
    _doctor(run, 0, prediction=" " + before[0]["answers"][0])
    doctored = _lines(run)
    old_score = before[0]["score"]
    assert old_score == 0.0  # 4 tokens cannot hold the 5-digit key and its leading space
    capsys.readouterr()
    assert main(["rescore", str(run)]) == 0
    out = capsys.readouterr().out
    after = _lines(run)
    assert after[1] == doctored[1]  # the untouched record: byte-identical
    new0, was0 = json.loads(after[0]), json.loads(doctored[0])
    assert new0["score"] == 1.0
    assert {k: v for k, v in new0.items() if k != "score"} == {k: v for k, v in was0.items() if k != "score"}
    assert list(new0) == list(was0)  # same keys in the same order
    # Hand-computed cell: (1.0 + the other record's unchanged score) / 2, ×100.
    other = before[1]["score"]
    assert _cell(run)["score"] == pytest.approx(100 * (1.0 + other) / 2)
    assert f"{TASK}: 1 of 2 score(s) changed, mean ×100 {100 * other / 2:.2f} → {100 * (1 + other) / 2:.2f}" \
        in out
    md = (run / "summary.md").read_text()
    assert f"**{100 * (1 + other) / 2:.2f}**" in md
    manifest = json.loads((run / "manifest.json").read_text())
    entry = manifest["rescores"][-1]
    assert entry["changed"] == {TASK: 1} and entry["time"] and entry["harness"]["version"]
    assert entry["command"] == f"python -m harness rescore {run}"
    # A second rescore changes nothing and says so.
    assert main(["rescore", str(run)]) == 0
    assert f"{TASK}: 0 of 2 score(s) changed" in capsys.readouterr().out
    assert _lines(run) == after
    assert len(json.loads((run / "manifest.json").read_text())["rescores"]) == 2


def test_rescore_leaves_failed_records_as_they_are(run, capsys):
    _doctor(run, 0, status="failed", error="out of memory: doctored", prediction=None, score=None)
    _doctor(run, 1, prediction=" " + json.loads(_lines(run)[1])["answers"][0])
    doctored = _lines(run)
    assert main(["rescore", str(run)]) == 0
    after = _lines(run)
    assert after[0] == doctored[0]
    assert json.loads(after[1])["score"] == 1.0
    assert _cell(run)["n_failed"] == 1 and _cell(run)["score"] == 100.0


def _refused(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(["rescore", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_rescore_refuses_what_is_not_a_finished_run(run, tmp_path, capsys):
    _doctor(run, 0, prediction=" " + json.loads(_lines(run)[0])["answers"][0])
    frozen = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    (tmp_path / "empty").mkdir()
    assert "not a run folder (no manifest.json)" in _refused(capsys, str(tmp_path / "empty"))
    # a job folder holding runs: the runs are named
    assert "pass those" in _refused(capsys, str(tmp_path))
    # one refused folder among several: nothing is written anywhere
    assert "no such run folder" in _refused(capsys, str(run), str(tmp_path / "missing"))
    # a run in flight: its samples file is locked by a writer
    with open(run / "samples.jsonl", "ab") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        assert "in flight" in _refused(capsys, str(run))
    # a sharded job not merged
    (run / "samples.rank1-of2.jsonl").write_bytes(b"")
    assert "shard file(s) samples.rank1-of2.jsonl" in _refused(capsys, str(run))
    (run / "samples.rank1-of2.jsonl").unlink()
    # a record of a task no family knows
    _doctor(run, 1, task="synthetic/no_such_task")
    frozen["samples.jsonl"] = (run / "samples.jsonl").read_bytes()
    assert "task(s) no registered family knows: synthetic/no_such_task (1 record)" in _refused(capsys, str(run))
    # a torn last line (a crash mid-write)
    (run / "samples.jsonl").write_bytes(frozen["samples.jsonl"] + b'{"key": "tor')
    assert "1 torn" in _refused(capsys, str(run))
    (run / "samples.jsonl").write_bytes(frozen["samples.jsonl"])
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == frozen
