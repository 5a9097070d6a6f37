"""Writes only where asked: no write through a symbolic link, over a non-regular file, over a user's folder, or
over an input; every target is byte-identical after a refused write."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from harness.provenance import make_manifest
from harness.store import RunError, RunStore, merge_shards
from harness.summary import write_summary
from tasks.safe_write import UnsafeWriteError, check_target, open_append, safe_name, write_atomic

VICTIM = b"a user's file that must survive\n"


def _victim(tmp_path: Path) -> Path:
    target = tmp_path / "victim.txt"
    target.write_bytes(VICTIM)
    return target


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(path: Path, n: int = 2) -> Path:
    with RunStore.create_or_resume(path, make_manifest({"preset": "p"}, argv=["t"])) as store:
        for i in range(n):
            store.append({"key": f"synthetic/passkey|512|{i}", "task": "synthetic/passkey", "level": "512",
                          "status": "ok", "score": 1.0, "prediction": "1", "answers": ["1"]})
    return path


def test_resume_refuses_a_linked_samples_file(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    victim = _victim(tmp_path)
    (run / "samples.jsonl").unlink()
    (run / "samples.jsonl").symlink_to(victim)
    manifest = json.loads((run / "manifest.json").read_text())
    with pytest.raises(RunError, match="symbolic link"):
        RunStore.create_or_resume(run, manifest)
    assert victim.read_bytes() == VICTIM


@pytest.mark.parametrize("name", ["manifest.json", ".lock"])
def test_resume_refuses_a_linked_manifest_or_lock(tmp_path: Path, name: str) -> None:
    """The manifest is read through the link (reading is harmless), but the resume's rewrite of it refuses."""
    run = _run(tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text())
    target = tmp_path / "target"
    target.write_bytes((run / name).read_bytes() if name == "manifest.json" else VICTIM)
    before = _sha(target)
    (run / name).unlink()
    (run / name).symlink_to(target)
    with pytest.raises(RunError, match="symbolic link"):
        RunStore.create_or_resume(run, manifest)
    assert _sha(target) == before


def test_summary_refuses_linked_targets(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    victim = _victim(tmp_path)
    (run / "summary.md").symlink_to(victim)
    with pytest.raises(UnsafeWriteError, match="symbolic link"):
        write_summary(run)
    assert victim.read_bytes() == VICTIM and not (run / "summary.json").is_symlink()


def test_summary_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash while a summary is written leaves the old summary whole (no truncated file)."""
    run = _run(tmp_path / "run")
    write_summary(run)
    before = (run / "summary.md").read_bytes()

    def crash(*_a: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        write_summary(run)
    assert (run / "summary.md").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_merge_refuses_a_linked_samples_file(tmp_path: Path) -> None:
    path = tmp_path / "run"
    manifest = make_manifest({"preset": "p"}, argv=["t"])
    for rank in range(2):
        with RunStore.create_or_resume(path, manifest, rank=rank, world=2) as store:
            store.append({"key": f"k{rank}", "status": "ok", "score": 1.0})
    victim = _victim(tmp_path)
    (path / "samples.jsonl").symlink_to(victim)
    with pytest.raises(RunError, match="symbolic link"):
        merge_shards(path)
    assert victim.read_bytes() == VICTIM


def test_store_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "summary.md").write_bytes(VICTIM)
    with pytest.raises(RunError, match="not a run"):
        RunStore.create_or_resume(folder, make_manifest({"preset": "p"}, argv=["t"]))
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "summary.md"]
    assert (folder / "summary.md").read_bytes() == VICTIM


def test_safe_write_primitives(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(victim)
    for write in (lambda: write_atomic(link, "x"), lambda: open_append(link)):
        with pytest.raises(UnsafeWriteError, match="symbolic link"):
            write()
    with pytest.raises(UnsafeWriteError, match="not a regular file"):
        check_target(tmp_path)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(UnsafeWriteError, match="not a regular file"):
            open_append(tmp_path / "fifo")
    assert victim.read_bytes() == VICTIM
    write_atomic(tmp_path / "new.txt", "ok")
    assert (tmp_path / "new.txt").read_text() == "ok"
    assert safe_name("a/b") == "a_b" and safe_name("tiny-full") == "tiny-full"
    assert safe_name("../x") == ".._x"  # one component: no separator left to climb with
    for bad in ("..", ".", "", "  ", "..."):
        with pytest.raises(UnsafeWriteError, match="cannot name a file"):
            safe_name(bad)


def test_plots_refuse_a_linked_figure(tmp_path: Path) -> None:
    from harness.plots import plot_runs

    run = _run(tmp_path / "run")
    out = tmp_path / "plots"
    first = plot_runs([run], out)
    assert first and all(p.is_file() for p in first)
    victim = _victim(tmp_path)
    first[0].unlink()
    first[0].symlink_to(victim)
    with pytest.raises(UnsafeWriteError, match="symbolic link"):
        plot_runs([run], out)
    assert victim.read_bytes() == VICTIM
