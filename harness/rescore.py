"""`python -m harness rescore RUN_DIR [RUN_DIR ...]`: apply each task's current scorer to a finished run's stored
predictions.

A scorer that changes (a new reading rule, a fixed normalisation) need not cost a new run: every successful
record keeps its prediction, references and ``extra``, which is all a scorer reads. For each run folder this

* refuses (one ``error:`` line, nothing written in any folder) a folder that is not a run folder (no
  ``manifest.json`` or no ``samples.jsonl``), a run still in flight (a process holds its samples file or its
  ``.lock``, or shard files are left: an unfinished sharded job), a samples file with torn or unparsable lines,
  a shared-context run (a turn may be graded by another task's scorer than the record's task), and records
  whose task no registered family knows;
* recomputes ``score`` and ``score_note`` of every successful record with its prediction
  (``tasks.scoring.score_detailed``, the call `harness run` makes); failed records and successful records
  without a prediction or references stay as they are;
* rewrites ``samples.jsonl`` atomically, changing only the lines whose score or note changed (every other
  field of such a line keeps its value and position; every other line keeps its bytes), appends an entry to the
  manifest's ``rescores`` (``harness.provenance.rescore_entry``) and regenerates ``summary.json`` /
  ``summary.md`` (``harness.summary.write_summary``);
* prints, per task, how many scores changed and the task's mean score ×100 before → after.

A job folder's ``report.md`` and figures (several runs side by side) are derived from the runs, so they are
regenerated afterwards from the rescored folders (``harness.report.write_report``, ``harness plot``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from harness.provenance import rescore_entry
from harness.store import (
    MANIFEST,
    SAMPLES,
    RunError,
    _folder_lock,
    encode_record,
    read_manifest,
    scan_files,
    writer_active,
)
from tasks.safe_write import UnsafeWriteError, write_atomic

try:  # POSIX advisory locks, as the store uses
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_SHOW = 3


@dataclass
class TaskChange:
    """What rescoring did to one task of a run: scored records, how many scores changed, mean before/after."""

    n: int = 0
    changed: int = 0
    before: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)

    @staticmethod
    def _mean(xs: list[float]) -> float | None:
        return 100.0 * sum(xs) / len(xs) if xs else None

    @property
    def mean_before(self) -> float | None:
        """Mean score ×100 over the task's scored records before rescoring."""
        return self._mean(self.before)

    @property
    def mean_after(self) -> float | None:
        """Mean score ×100 over the task's scored records after rescoring."""
        return self._mean(self.after)


@dataclass
class Plan:
    """One checked run folder: its raw sample lines and, per line, the record to write instead (or None)."""

    path: Path
    manifest: dict[str, Any]
    lines: list[bytes]
    replaced: list[dict[str, Any] | None]
    tasks: dict[str, TaskChange]

    @property
    def changed(self) -> int:
        return sum(r is not None for r in self.replaced)


def _show(items: list[str]) -> str:
    return ", ".join(items[:_SHOW]) + (f", … ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _check_folder(path: Path) -> dict[str, Any]:
    """The run's manifest when ``path`` is a finished run folder that can be rescored; RunError otherwise."""
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder")
    if not (path / MANIFEST).is_file():
        below = sorted(p.name for p in path.iterdir() if (p / MANIFEST).is_file())
        hint = f"; it holds run folders ({_show(below)}): pass those" if below else ""
        raise RunError(f"{path}: not a run folder (no {MANIFEST}){hint}")
    manifest = read_manifest(path)
    config = manifest.get("config")
    if isinstance(config, dict) and config.get("shared_context"):
        raise RunError(f"{path}: a shared-context run (a turn is graded by its question's scorer, which the "
                       "records do not name); rescore takes runs of harness run without --shared-context")
    busy = writer_active(path)
    if busy is not None:
        raise RunError(f"{path}: the run is in flight ({busy.name} is locked by another process); rescore it "
                       "once the run has finished")
    scans = scan_files(path)
    shards = [f.name for f, _ in scans if f.name != SAMPLES]
    if shards:
        raise RunError(f"{path}: shard file(s) {_show(shards)} (a sharded job still running or never merged); "
                       "rescore it once the job has finished")
    if not (path / SAMPLES).is_file():
        raise RunError(f"{path}: not a run folder (no {SAMPLES})")
    torn = sum(s.torn for _, s in scans)
    bad = sum(s.bad for _, s in scans)
    if torn or bad:
        raise RunError(f"{path}/{SAMPLES}: {torn} torn and {bad} unparsable line(s) (an interrupted run); "
                       "resume it with the same harness run command first")
    return manifest


def plan(path: Path | str) -> Plan:
    """Check one run folder and compute its new scores, writing nothing; RunError when it cannot be rescored."""
    from tasks.scoring.registry import resolve_task, score_detailed

    path = Path(path)
    manifest = _check_folder(path)
    lines = [line for line in (path / SAMPLES).read_bytes().splitlines(keepends=True) if line.strip()]
    records = [json.loads(line) for line in lines]
    unknown: dict[str, int] = defaultdict(int)
    for rec in records:
        task = rec.get("task")
        try:
            resolve_task(task)
        except (ValueError, TypeError):
            unknown[str(task)] += 1
    if unknown:
        names = [f"{t} ({n} record{'s' if n > 1 else ''})" for t, n in sorted(unknown.items())]
        raise RunError(f"{path}: record(s) of task(s) no registered family knows: {_show(names)}; register the "
                       "family (AHN_HARNESS_PLUGINS) or leave the run as it is")
    tasks: dict[str, TaskChange] = defaultdict(TaskChange)
    replaced: list[dict[str, Any] | None] = []
    for rec in records:
        new = None
        old = _score(rec.get("score"))
        prediction, answers, extra = rec.get("prediction"), rec.get("answers"), rec.get("extra")
        if rec.get("status", "ok") == "ok" and prediction is not None and answers is not None \
                and (extra is None or isinstance(extra, dict)):
            scored = score_detailed(rec["task"], prediction, answers, extra or {})
            change = tasks[rec["task"]]
            change.n += 1
            if old is not None:
                change.before.append(old)
            change.after.append(scored.score)
            if scored.score != old or scored.note != rec.get("score_note"):
                change.changed += scored.score != old
                new = {**rec, "score": scored.score, "score_note": scored.note}
        elif rec.get("status", "ok") == "ok" and old is not None:  # kept as it is: counts in both means
            tasks[rec["task"]].before.append(old)
            tasks[rec["task"]].after.append(old)
        replaced.append(new)
    return Plan(path, manifest, lines, replaced, dict(sorted(tasks.items())))


def _lock_samples(path: Path) -> BinaryIO:
    """Open and exclusively lock the samples file (a run resuming now is refused instead of appending)."""
    fh = open(path / SAMPLES, "rb")  # noqa: SIM115 (closed by the caller)
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            fh.close()
            raise RunError(f"{path}: the run is in flight ({SAMPLES} is locked by another process)") from e
    return fh


def apply(p: Plan, entry: dict[str, Any]) -> None:
    """Write a checked plan: samples.jsonl (atomically), ``entry`` appended to the manifest's ``rescores``, the
    summaries."""
    from harness.summary import write_summary

    with _folder_lock(p.path):  # no run of this folder starts while it is rewritten
        fh = _lock_samples(p.path)
        try:
            if [line for line in fh.read().splitlines(keepends=True) if line.strip()] != p.lines:
                raise RunError(f"{p.path}/{SAMPLES} changed while it was being rescored; run rescore again")
            if p.changed:
                out = b"".join(line if new is None else encode_record(new)
                               for line, new in zip(p.lines, p.replaced))
                write_atomic(p.path / SAMPLES, out)
            manifest = dict(p.manifest)
            manifest["rescores"] = [*manifest.get("rescores", []), entry]
            write_atomic(p.path / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n")
        except UnsafeWriteError as e:
            raise RunError(str(e)) from e
        finally:
            fh.close()
    write_summary(p.path)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def describe(p: Plan) -> list[str]:
    """The lines `harness rescore` prints for one folder: per task, changed scores and mean ×100 before → after."""
    lines = [f"{p.path}: {p.changed} record(s) rewritten"]
    for task, c in p.tasks.items():
        lines.append(f"  {task}: {c.changed} of {c.n} score(s) changed, mean ×100 {_fmt(c.mean_before)} → "
                     f"{_fmt(c.mean_after)}")
    return lines


def rescore(paths: Sequence[Path | str], argv: Sequence[str] | None = None) -> list[Plan]:
    """Rescore run folders: every folder is checked first, so a refused one leaves all of them untouched."""
    plans = [plan(p) for p in paths]
    # Every entry is made before anything is written: the code's revision and dirty flag are those the command
    # started with, not a checkout dirtied by the folders rescored before (committed runs live in the tree).
    entries = [rescore_entry({t: c.changed for t, c in p.tasks.items()}, None if argv is None else list(argv))
               for p in plans]
    for p, entry in zip(plans, entries):
        apply(p, entry)
    return plans


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness rescore",
        description="Apply each task's current scorer to the stored predictions of finished run folders; rewrite "
                    "samples.jsonl (only score and score_note change), the manifest's rescores and the summaries.")
    parser.add_argument("runs", nargs="+", type=Path, help="run folders written by harness run --output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m harness rescore`; RunError (a ValueError) becomes one ``error:`` line."""
    given = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(given)
    for p in rescore(args.runs, argv=["python", "-m", "harness", "rescore", *given]):
        print("\n".join(describe(p)))
    print("reports and figures made from these runs (report.md, plots/) are not rewritten: regenerate them",
          flush=True)
    return 0


__all__ = ["Plan", "TaskChange", "apply", "build_parser", "describe", "main", "plan", "rescore"]
