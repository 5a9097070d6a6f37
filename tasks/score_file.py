"""``harness score``: score a prediction file (JSON lines) with a task's official-parity scorer.

Accepted line formats (fields looked up in this order):

* InfiniteBench results: ``{"id", "prediction" | "pred", "ground_truth" | "label"}``
* LV-Eval predictions: ``{"pred", "answers", "gold_ans" | "answer_keywords"}``
* the harness's own records: ``{"prediction", "answers", "extra"}``

A line that cannot be read (bad JSON, missing field, bytes that are not UTF-8) is reported with its number
and skipped; the others are scored. The printed mean is ``round(100 × mean, 2)`` over the scored lines, as the
official tools print it. Official per-model quirks (InfiniteBench math_calc drops GPT-4's first number) follow
``--model-name``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tasks.jsonl import JsonlError, decode_object, iter_lines
from tasks.safe_write import UnsafeWriteError, check_target, same_file, write_atomic
from tasks.scoring import resolve_task, score_detailed

PREDICTION_KEYS = ("prediction", "pred")
REFERENCE_KEYS = ("answers", "ground_truth", "label")
EXTRA_KEYS = ("gold_ans", "answer_keywords", "options", "model_name", "all_classes")


class ScoreFileError(ValueError):
    """A prediction file that cannot be scored at all (missing, empty, no readable line)."""


@dataclass
class ScoreReport:
    """Outcome of scoring one file: ``mean`` is ×100 and rounded to 2 decimals."""

    task: str
    path: str
    mean: float
    n_scored: int
    skipped: list[tuple[int, str]] = field(default_factory=list)
    n_official_would_raise: int = 0
    model_name: str | None = None

    def summary(self) -> str:
        """One line for the terminal."""
        parts = [f"{self.n_scored} scored"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.n_official_would_raise:
            parts.append(f"{self.n_official_would_raise} where the official scorer would raise (scored 0)")
        return f"{self.task}: {self.mean:.2f}  ({', '.join(parts)})"


class _BadLine(Exception):  # noqa: N818
    def __init__(self, reason: str, record_id: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record_id = record_id


def _read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank physical lines with their 1-based numbers, streamed (``tasks.jsonl``: a line over its size
    limit stops the file with an error); decoding is per line so one bad byte costs one line, not the file."""
    with open(path, "rb") as fh:
        yield from iter_lines(fh, str(path))


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        return decode_object(raw, "line")
    except JsonlError as exc:
        raise _BadLine(exc.reason) from None


def _fields(record: dict[str, Any], model_name: str | None) -> tuple[Any, Any, dict[str, Any]]:
    """(prediction, references, extra) of one record."""
    record_id = record.get("id")
    prediction_key = next((k for k in PREDICTION_KEYS if k in record), None)
    if prediction_key is None:
        raise _BadLine("missing field 'prediction' (or 'pred')", record_id)
    reference_key = next((k for k in REFERENCE_KEYS if k in record), None)
    if reference_key is None:
        raise _BadLine("missing field 'answers' (or 'ground_truth' / 'label')", record_id)
    extra = record.get("extra") or {}
    if not isinstance(extra, dict):
        raise _BadLine("field 'extra' is not a JSON object", record_id)
    extra = dict(extra)
    for key in EXTRA_KEYS:
        if key in record and key not in extra:
            extra[key] = record[key]
    if model_name is not None:
        extra["model_name"] = model_name
    return record[prediction_key], record[reference_key], extra


def task_name(spec: str) -> str:
    """The scorer's ``family/name`` for a task written as ``run`` takes it (``family:name``, with or without
    ``@levels``: a scorer is the same at every level); ``family/name`` passes through."""
    if ":" not in spec:
        return spec
    family, _, rest = spec.partition(":")
    name = rest.partition("@")[0].strip()
    if not name:
        raise ValueError(f"task {spec!r} names a family only; score needs one task, e.g. {family.strip()}:<name> "
                         f"({family.strip()}/<name>)")
    return f"{family.strip()}/{name}"


def score_predictions(
    task: str, path: str | Path, output: str | Path | IO[str] | None = None, model_name: str | None = None
) -> ScoreReport:
    """Score every line of ``path`` with ``task``'s scorer; write one JSON line per input line to ``output``
    (a path, ``"-"`` for stdout, or an open text stream) when given.

    Raises ``ValueError`` for an unknown task and :class:`ScoreFileError` for a missing or empty file or one
    with no readable line; bad lines are skipped and listed in ``ScoreReport.skipped``.
    """
    task = task_name(task)
    resolve_task(task)  # unknown task: fail before touching the file
    path = Path(path)
    if not path.exists():
        raise ScoreFileError(f"predictions file not found: {path}")
    if not path.is_file():
        raise ScoreFileError(f"predictions path is not a file: {path}")
    _check_output(output, path)
    out_lines: list[str] = []
    scores: list[float] = []
    skipped: list[tuple[int, str]] = []
    n_raise = 0
    try:  # streamed: one line in memory at a time, each at most tasks.jsonl.MAX_LINE_BYTES
        for number, raw in _read_lines(path):
            row = _score_line(task, number, raw, model_name, scores, skipped)
            n_raise += "note" in row
            out_lines.append(json.dumps(row, ensure_ascii=False))
    except OSError as exc:
        raise ScoreFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except JsonlError as exc:
        raise ScoreFileError(str(exc)) from None
    if not out_lines:
        raise ScoreFileError(f"predictions file is empty (no JSON lines): {path}")

    if output is not None:
        _write(output, out_lines)
    if not scores:
        first = "; ".join(f"line {n}: {why}" for n, why in skipped[:3])
        raise ScoreFileError(f"no line of {path} could be scored ({first})")
    mean = round(100 * sum(scores) / len(scores), 2)
    return ScoreReport(task, str(path), mean, len(scores), skipped, n_raise, model_name)


def _score_line(task: str, number: int, raw: bytes, model_name: str | None, scores: list[float],
                skipped: list[tuple[int, str]]) -> dict[str, Any]:
    """The output row of one input line; appends its score to ``scores``, or its reason to ``skipped``."""
    row: dict[str, Any] = {"line": number}
    try:
        record = _parse(raw)
        if "id" in record:
            row["id"] = record["id"]
        prediction, references, extra = _fields(record, model_name)
    except _BadLine as bad:
        skipped.append((number, bad.reason))
        row.update(score=None, skipped=bad.reason)
        return row
    result = score_detailed(task, prediction, references, extra)
    scores.append(result.score)
    row["score"] = result.score
    if result.note:
        row["note"] = result.note
    return row


def _check_output(output: str | Path | IO[str] | None, path: Path) -> None:
    """Refuse, before anything is read or written, an output that is empty, the predictions file itself, a
    symbolic link or not a regular file."""
    if output is None or hasattr(output, "write") or str(output) == "-":
        return
    if not str(output).strip():
        raise ScoreFileError("--output '' is empty; pass a file name, or '-' for standard output")
    if Path(output).exists() and same_file(output, path):
        raise ScoreFileError(f"--output {output} is the predictions file {path}; writing the scores there would "
                             "replace the predictions (pass another file)")
    try:
        check_target(output)
    except UnsafeWriteError as exc:
        raise ScoreFileError(f"--output {exc}") from None


def _write(output: str | Path | IO[str], lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    if hasattr(output, "write"):
        output.write(text)  # type: ignore[union-attr]
    elif str(output) == "-":
        sys.stdout.write(text)
    else:
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``score`` command's arguments (pass a sub-parser to mount it under ``python -m harness``)."""
    if parser is None:
        parser = argparse.ArgumentParser(
            prog="harness score", description="Score a prediction file with a task's official-parity scorer."
        )
    parser.add_argument(
        "--task", required=True, help="family/task or family:task (as run takes it), e.g. infinitebench/passkey, "
                                      "lveval:cmrc_mixup"
    )
    parser.add_argument("--predictions", required=True, help="JSON-lines prediction file")
    parser.add_argument("--output", help="write one JSON line per input line here ('-' for stdout)")
    parser.add_argument(
        "--model-name", help="model name for per-model official quirks (InfiniteBench math_calc: gpt4)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute a parsed ``score`` command; 0 on success, 2 on an input error (message on stderr)."""
    try:
        report = score_predictions(args.task, args.predictions, args.output, args.model_name)
    except ScoreFileError as exc:
        print(f"harness score: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # unknown task
        print(f"harness score: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output could not be written
        why = "the disk is full" if exc.errno == 28 else (exc.strerror or str(exc))
        if exc.filename and str(exc.filename) != str(args.output):
            why += f" at {exc.filename}"
        print(f"harness score: error: cannot write --output {args.output}: {why}; pass a file you can write to",
              file=sys.stderr)
        return 2
    for number, reason in report.skipped:
        print(f"harness score: line {number} skipped: {reason}", file=sys.stderr)
    print(report.summary(), file=sys.stderr if str(args.output) == "-" else sys.stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``harness score --task T --predictions FILE [--output FILE] [--model-name NAME]``."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage / help
        return int(exc.code) if isinstance(exc.code, int) else 2
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
