"""Whether a run folder can be trusted by the regression gate, and its records loaded strictly.

``load_run`` is forgiving on purpose (a plot of a half-finished run is useful): it skips unparsable lines,
resolves duplicate keys (later wins, never a failure over a success) and folds stray shard files in. A gate
must not be: each of those is how a worse run could pass. ``load_gate_run`` refuses (``RunError``, exit 2 in
``harness compare``) a run that

* is being written: a process holds its samples file or its ``.lock`` (``harness.store.writer_active``);
* has shard files (``samples.rank*-of*.jsonl``): a sharded job still running, or a stray file that would
  override records of the finished ``samples.jsonl``;
* has torn or unparsable lines, or the same sample key on more than one line (in one file or across files);
* has a successful record whose score is not a finite number in [0, 1] (every task's metric range, see
  ``tasks.scoring.registry.score_detailed``), or whose score differs from the score its own prediction,
  answers and ``extra`` get from the task's scorer now (an edited or inflated score);
* has successful records whose score cannot be recomputed (no prediction or answers, or a task no registered
  family knows), unless ``allow_unverified`` is given.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from harness.store import SAMPLES, Run, RunError, dedupe, read_manifest, scan_files, writer_active

SCORE_RANGE = (0.0, 1.0)  # every registered scorer's range (score_detailed clamps to it)
SCORE_TOLERANCE = 1e-9  # a recomputed score is the same float; the slack only absorbs a decimal round trip
_SHOW = 3


def _show(items: list[str]) -> str:
    return ", ".join(items[:_SHOW]) + (f", … ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def score_problems(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(invalid, unverifiable): keys of successful records whose score is out of range, not a number or not the
    one their prediction gets (each with the reason), and keys whose score cannot be recomputed."""
    from tasks.scoring.registry import resolve_task, score_detailed

    invalid: list[str] = []
    unverifiable: list[str] = []
    lo, hi = SCORE_RANGE
    for rec in records:
        if rec.get("status", "ok") != "ok":
            continue
        key, value = rec["key"], rec.get("score")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            invalid.append(f"{key} (status ok, score {value!r} is not a finite number)")
            continue
        if not lo <= value <= hi:
            invalid.append(f"{key} (score {value!r} outside the metric's range [{lo:g}, {hi:g}])")
            continue
        task, prediction, answers, extra = rec.get("task"), rec.get("prediction"), rec.get("answers"), rec.get("extra")
        if prediction is None or answers is None or not isinstance(task, str):
            unverifiable.append(key)
            continue
        try:
            resolve_task(task)
        except ValueError:
            unverifiable.append(key)
            continue
        if extra is not None and not isinstance(extra, dict):
            invalid.append(f"{key} (extra is not an object)")
            continue
        again = score_detailed(task, prediction, answers, extra or {}).score
        if abs(again - float(value)) > SCORE_TOLERANCE:
            invalid.append(f"{key} (recorded score {value!r}, its prediction scores {again!r})")
    return invalid, unverifiable


def load_gate_run(path: Path | str, *, allow_unverified: bool = False) -> Run:
    """The run at ``path`` with every check above passed; ``RunError`` naming each problem otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder")
    manifest = read_manifest(path)
    busy = writer_active(path)
    if busy is not None:
        raise RunError(f"{path} is being written by another process ({busy.name} is locked); "
                       "compare it once the run has finished")
    scans = scan_files(path)
    problems: list[str] = []
    shards = [f.name for f, _ in scans if f.name != SAMPLES]
    if shards:
        problems.append(f"shard file(s) {_show(shards)} (an unfinished sharded job, or stray files that would "
                        "override samples.jsonl; finish or merge the job, or remove them)")
    torn = sum(s.torn for _, s in scans)
    bad = sum(s.bad for _, s in scans)
    if torn:
        problems.append(f"{torn} torn line(s) at the end of a samples file (an interrupted write)")
    if bad:
        problems.append(f"{bad} unparsable line(s)")
    raw = [rec for _, s in scans for rec in s.records]
    dups = [k for k, n in Counter(r["key"] for r in raw).items() if n > 1]
    if dups:
        problems.append(f"{len(dups)} sample key(s) on more than one line, e.g. {_show(dups)}")
    records = dedupe(raw)
    invalid, unverifiable = score_problems(records)
    if invalid:
        problems.append(f"{len(invalid)} score(s) that are not what the task's scorer gives: {_show(invalid)}")
    if unverifiable and not allow_unverified:
        problems.append(f"{len(unverifiable)} successful record(s) whose score cannot be recomputed (no "
                        f"prediction or answers, or an unknown task), e.g. {_show(unverifiable)}; pass "
                        "--allow-unverified-scores to trust them")
    if problems:
        raise RunError(f"{path} cannot be gated: " + "; ".join(problems))
    return Run(manifest=manifest, records=records, path=path)


__all__ = ["SCORE_RANGE", "load_gate_run", "score_problems"]
