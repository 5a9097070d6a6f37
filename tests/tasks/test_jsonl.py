"""The one JSON-lines reader: any line ends as a record or as one error naming the file and line."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

import tasks.jsonl
from tasks.family import read_jsonl
from tasks.jsonl import JsonlError, iter_objects, read_objects

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("line, reason", [
    (DEEP.encode(), "JSON nested too deeply to parse"),
    (b'{"a": 1', "invalid JSON"),
    (b"\xff\xfe{}", "not valid UTF-8 (invalid start byte at byte 0)"),
    (b"[1, 2]", "not a JSON object (list)"),
    (b'"text"', "not a JSON object (str)"),
])
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path: Path, line: bytes, reason: str) -> None:
    f = tmp_path / "x.jsonl"
    f.write_bytes(b'{"ok": 1}\n\n' + line + b"\n")
    with pytest.raises(JsonlError) as exc:
        read_objects(f)
    assert str(exc.value).startswith(f"{f}:3: ") and exc.value.where == f"{f}:3" and reason in exc.value.reason


def test_an_over_long_line_is_not_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks.jsonl, "MAX_LINE_BYTES", 64)
    f = tmp_path / "long.jsonl"
    f.write_bytes(b'{"a": "' + b"x" * 10_000 + b'"}')  # one endless line, no newline
    with pytest.raises(JsonlError, match=r"long.jsonl:1: line longer than 64 bytes \(the limit\)"):
        read_objects(f)
    f.write_bytes(b'{"a": "' + b"x" * 50 + b'"}\n')  # within the limit
    assert read_objects(f) == [{"a": "x" * 50}]


def test_bom_blank_lines_and_limit(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"i": 0}\n\n   \n{"i": 1}\n{"i": 2}\n' + DEEP.encode() + b"\n")
    assert read_objects(f, limit=3) == [{"i": 0}, {"i": 1}, {"i": 2}]  # stops before the bad fourth record
    assert [n for n, _ in iter_objects(f, limit=2)] == [1, 4]
    assert read_jsonl(f, limit=1) == [{"i": 0}]  # the adapters' reader is this one


def test_zip_member_stream(tmp_path: Path) -> None:
    z = tmp_path / "d.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("data/a.jsonl", json.dumps({"x": "中文"}) + "\n" + DEEP + "\n")
    with zipfile.ZipFile(z) as zf, zf.open("data/a.jsonl") as fh:
        rows = iter_objects(fh, "d.zip:data/a.jsonl")
        assert next(rows) == (1, {"x": "中文"})
        with pytest.raises(JsonlError, match="d.zip:data/a.jsonl:2: JSON nested too deeply"):
            next(rows)
    assert list(iter_objects(io.BytesIO(b'{"a": 1}\n'), "mem")) == [(1, {"a": 1})]


def test_adapters_fail_with_one_message(tmp_path: Path) -> None:
    """The benchmark adapters read through it: a deep line in an InfiniteBench or LongBench file, or a zip that
    is not one, is a ValueError naming the file (the command line's one `error:` line), not a traceback."""
    from tasks import infinitebench, longbench

    f = tmp_path / "passkey.jsonl"
    f.write_text(DEEP + "\n")
    with pytest.raises(ValueError, match="passkey.jsonl:1: JSON nested too deeply"):
        infinitebench.read_file(f, "passkey")
    bad_zip = tmp_path / "data.zip"
    bad_zip.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable zip archive"):
        longbench._records(bad_zip, "data/x.jsonl", None)


def test_store_counts_a_deep_line_as_unreadable(tmp_path: Path) -> None:
    """Readers of runs (compare, plot, export-lm-eval) go through the store, which skips and counts it."""
    from harness.provenance import make_manifest
    from harness.store import RunStore, load_run

    run = tmp_path / "run"
    with RunStore.create_or_resume(run, make_manifest({"preset": "p"}, argv=["t"])) as store:
        store.append({"key": "a", "status": "ok", "score": 1.0})
    with open(run / "samples.jsonl", "ab") as fh:
        fh.write(DEEP.encode() + b"\n" + b'{"key": "b", "status": "ok", "score": 0.0}\n')
    loaded = load_run(run)
    assert [r["key"] for r in loaded.records] == ["a", "b"] and loaded.bad_lines == 1
