"""Doctored copies of a committed reference run: each is a way a worse or unfinished run could pass a gate.

``doctor(dest, case)`` copies ``leaderboards/tiny/default-run/tiny-full`` (manifest and samples) to ``dest`` and
applies ``case``. Every case starts from the real records, so a gate that recomputes scores from predictions
sees exactly what a run wrote.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.hashing import RECORD_HASH_KEYS

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "leaderboards" / "tiny" / "default-run" / "tiny-full"

Records = list[dict[str, Any]]


def copy_reference(dest: Path) -> Path:
    """The reference run's manifest and samples, copied to ``dest``."""
    dest.mkdir(parents=True)
    for name in ("manifest.json", "samples.jsonl"):
        shutil.copyfile(REFERENCE / name, dest / name)
    return dest


def read(dest: Path) -> Records:
    return [json.loads(line) for line in (dest / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


def write(dest: Path, records: Records, extra_lines: list[str] | None = None) -> None:
    lines = [json.dumps(r, ensure_ascii=False) for r in records] + list(extra_lines or [])
    (dest / "samples.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _edit(fn: Callable[[Records], Records | None]) -> Callable[[Path], None]:
    def apply(dest: Path) -> None:
        records = read(dest)
        out = fn(records)
        write(dest, records if out is None else out)
    return apply


def _wrong(rec: dict[str, Any]) -> None:
    """The prediction made wrong and scored as the scorer scores it."""
    rec["prediction"] = " 00000"
    rec["score"] = 0.0
    if isinstance(rec.get("generated_ids"), list):
        rec["generated_ids"] = [32, 48, 48, 48, 48, 48]


def _flip_passkey_2k(records: Records) -> None:
    """2 of the 4 passkey@2k samples flipped from right to wrong."""
    for rec in [r for r in records if r["key"].startswith("synthetic/passkey|2k|")][:2]:
        _wrong(rec)


def _partial(records: Records) -> Records:
    return records[:3]


def _all_failed(records: Records) -> None:
    for rec in records:
        rec.update(status="failed", error="out of memory", score=None, prediction=None)


def _inflated(records: Records) -> None:
    records[0]["score"] = 1000.0


def _edited(records: Records) -> None:
    """Wrong predictions with their scores edited back to 1.0."""
    for rec in records[:4]:
        _wrong(rec)
        rec["score"] = 1.0


def _duplicate(records: Records) -> Records:
    """A failure, then a later line for the same key claiming success (a duplicate that would override it)."""
    failed = dict(records[0], status="failed", score=None, prediction=None, error="out of memory")
    return [failed, *records[1:], records[0]]


def _stray_shard(dest: Path) -> None:
    records = read(dest)
    for rec in records:
        _wrong(rec)
    records = records[:1]
    records[0]["score"] = 0.0
    (dest / "samples.rank0-of2.jsonl").write_text(json.dumps(records[0]) + "\n", encoding="utf-8")


def _unparsable(dest: Path) -> None:
    """A failing line made unparsable in the middle of the file (a reader that skips it loses the failure)."""
    records = read(dest)
    lines = [json.dumps(r) for r in records]
    lines[1] = lines[1][: len(lines[1]) // 2]
    (dest / "samples.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _deep(dest: Path) -> None:
    """One line of 100,000 nested lists (a recursive JSON parser's RecursionError)."""
    records = read(dest)
    lines = [json.dumps(r) for r in records]
    lines.insert(1, "[" * 100_000 + "]" * 100_000)
    (dest / "samples.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _stripped(records: Records) -> None:
    for rec in records:
        for key in RECORD_HASH_KEYS:
            rec.pop(key, None)


def _other_ids(records: Records) -> None:
    """The same predictions and scores, other generated ids (what the text alone cannot show)."""
    for rec in records[:1]:
        rec["generated_ids"] = [*rec["generated_ids"][:-1], rec["generated_ids"][-1] + 1]


CASES: dict[str, Callable[[Path], None]] = {
    "same": lambda dest: None,
    "flipped": _edit(_flip_passkey_2k),
    "partial": _edit(_partial),
    "all-failed": _edit(_all_failed),
    "inflated": _edit(_inflated),
    "edited": _edit(_edited),
    "duplicate": _edit(_duplicate),
    "stray-shard": _stray_shard,
    "unparsable": _unparsable,
    "deep-nesting": _deep,
    "stripped-hashes": _edit(_stripped),
    "other-ids": _edit(_other_ids),
}


def doctor(dest: Path, case: str) -> Path:
    """A copy of the reference run at ``dest``, doctored as ``case`` (one of ``CASES``)."""
    copy_reference(dest)
    CASES[case](dest)
    return dest
