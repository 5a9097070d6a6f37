"""One JSON-lines reader for benchmark files, training data and prediction files.

Any line, however hostile, ends as a record or as one ``JsonlError`` (a ``ValueError``) naming the file, the line
number and what is wrong: a line longer than ``MAX_LINE_BYTES`` (read no further than that: a file of one
endless line does not fill memory), bytes that are not UTF-8, invalid JSON, nesting deeper than Python's parser
recurses (100,000 ``[`` is a ``RecursionError`` in ``json.loads``), or a value that is not a JSON object.
Callers either stop on the error (a benchmark or training file) or count the line as skipped (``harness
score``). Blank lines are skipped; a UTF-8 byte-order mark on the first line is ignored.

The run store (``harness.store``) keeps its own reader: it also repairs a torn last line left by a crash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

MAX_LINE_BYTES = 256 * 2**20  # 256 MiB: ~100x the longest benchmark record (an InfiniteBench book, ~2.5 MB)
_BOM = b"\xef\xbb\xbf"


class JsonlError(ValueError):
    """A line that is not a JSON object, with ``where`` (``file:line``) and ``reason``."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


def decode_line(raw: bytes, where: str) -> Any:
    """The JSON value of one line's bytes; ``JsonlError`` for bad UTF-8, bad JSON or absurd nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonlError(where, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonlError(where, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise JsonlError(where, "JSON nested too deeply to parse") from None


def decode_object(raw: bytes, where: str) -> dict[str, Any]:
    """``decode_line`` that also requires a JSON object."""
    value = decode_line(raw, where)
    if not isinstance(value, dict):
        raise JsonlError(where, f"not a JSON object ({type(value).__name__})")
    return value


def require_text(rec: dict[str, Any], fields: tuple[str, ...], what: str) -> None:
    """``ValueError`` naming ``what`` (a benchmark record) unless each of ``fields`` is a string, and the first
    one (the context) is not empty: a malformed data file must not run as an empty prompt."""
    for i, name in enumerate(fields):
        value = rec.get(name)
        if not isinstance(value, str) or (i == 0 and not value.strip()):
            shown = "missing" if name not in rec else f"{type(value).__name__} {str(value)[:40]!r}"
            raise ValueError(f"{what}: field {name!r} must be {'non-empty ' if i == 0 else ''}text, got {shown} "
                             "(a malformed or foreign data file?)")


def iter_lines(stream: IO[bytes], name: str, max_line_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each non-blank line of a binary stream; ``JsonlError`` for a line longer than
    ``max_line_bytes`` (default ``MAX_LINE_BYTES``)."""
    max_line_bytes = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    number = 0
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            raise JsonlError(f"{name}:{number}", f"line longer than {max_line_bytes:,} bytes (the limit); not a "
                                                 "JSON-lines record")
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        if raw.strip():
            yield number, raw


def iter_objects(source: str | os.PathLike | IO[bytes], name: str | None = None, limit: int | None = None,
                 max_line_bytes: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of the first ``limit`` records of a file or binary stream; stops with
    ``JsonlError`` at the first bad line."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            yield from iter_objects(fh, name or str(source), limit, max_line_bytes)
        return
    label = name or getattr(source, "name", "<stream>")
    n = 0
    for number, raw in iter_lines(source, str(label), max_line_bytes):
        if limit is not None and n >= limit:
            return
        yield number, decode_object(raw, f"{label}:{number}")
        n += 1


def read_objects(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The first ``limit`` JSON objects of a JSON-lines file (see ``iter_objects``)."""
    return [obj for _, obj in iter_objects(path, limit=limit)]


__all__ = ["MAX_LINE_BYTES", "JsonlError", "decode_line", "decode_object", "iter_lines", "iter_objects",
           "read_objects", "require_text"]
