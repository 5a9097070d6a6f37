"""Real-text haystacks: the frozen sources cut into chunks that needles may only be inserted between.

* ``prose_en``: the paragraphs of Python's documentation topics (``pydoc_data/topics.py``, the plain-text
  language reference that ``help()`` shows) followed by the licence texts, in manifest order.
* ``prose_zh``: the entries of fortunes-zh's ``chinese`` file (proverbs, classical prose and poems, modern
  Chinese notes), without the terminal colour codes.
* ``code``: the standard-library files, each cut into segments before every top-level statement (a function,
  a class, an import, ...), so the concatenated segments of a file are the file; a ``# File: <name>`` line opens
  each file. Needles go between the blank-line-separated blocks of a segment.

A haystack starts at a chunk drawn from the sample's seed and runs on through the stream, wrapping around at its
end, so every sample reads a different stretch of the same text. A prose chunk longer than 1,000 characters is
cut at line ends, so a needle can land every ~1,000 characters. Chunks are cut into word atoms (in Chinese text,
each non-ASCII character) so prompts can be fitted to a token count (`tasks/synthetic/filler.py`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import cycle, islice

from tasks.synthetic.filler import Haystack

from .sources import read_text, sources

LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")
CJK_ATOM = re.compile(r"[^\s\x00-\x7f]\s*|[!-~]+\s*|\s+")  # each non-ASCII character, each ASCII word
FILE_HEADER = "# File: {name}\n"
HAYSTACK_KINDS = ("prose_en", "prose_zh", "code")
MAX_CHUNK_CHARS = 1000
PAD_MAX = 256  # characters of a partial last atom (fitted_context)


def doc_topics(text: str) -> list[str]:
    """The texts of ``topics = {...}`` in a frozen ``pydoc_data/topics.py``, in file order."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "topics" for t in node.targets):
            return list(ast.literal_eval(node.value).values())
    raise ValueError("pydoc_data/topics.py has no 'topics = {...}' assignment")


def split_long(chunk: str, limit: int = MAX_CHUNK_CHARS) -> list[str]:
    """``chunk`` cut at line ends into pieces of at most ``limit`` characters (a longer line stays whole), so a
    long table or entry still offers needle positions every ``limit`` characters or so."""
    if len(chunk) <= limit:
        return [chunk]
    pieces, current = [], ""
    for line in LINE.findall(chunk):
        if current and len(current) + len(line) > limit:
            pieces.append(current)
            current = ""
        current += line
    return pieces + [current] if current else pieces


def paragraphs(text: str) -> list[str]:
    """Non-blank paragraphs (split at blank lines), trailing whitespace removed."""
    return [p.strip("\n").rstrip() for p in PARAGRAPH_BREAK.split(text) if p.strip()]


@cache
def english_chunks() -> tuple[str, ...]:
    out: list[str] = []
    for src in sources("prose_en"):
        text = read_text(src.name)
        docs = doc_topics(text) if src.name == "pydoc_data/topics.py" else [text]
        for doc in docs:
            out.extend(piece for p in paragraphs(doc) for piece in split_long(p + "\n\n"))
    return tuple(out)


@cache
def chinese_chunks() -> tuple[str, ...]:
    out: list[str] = []
    for src in sources("prose_zh"):
        for entry in read_text(src.name).split("\n%\n"):
            entry = ANSI_CODE.sub("", entry).strip()
            if entry and entry != "%":
                out.extend(split_long(entry + "\n\n"))
    return tuple(out)


@dataclass(frozen=True)
class Segment:
    """A top-level statement of a standard-library file, with the lines that follow it up to the next one."""

    file: str
    index: int  # position in the whole code stream
    text: str
    node: ast.stmt  # the statement as parsed from the whole file (line numbers of the file)


@cache
def code_segments() -> tuple[Segment, ...]:
    out: list[Segment] = []
    for src in sources("code"):
        text = read_text(src.name)
        lines = LINE.findall(text)  # "\n" ends a line, as for ast (str.splitlines also cuts at \f, \x1c, ...)
        body = ast.parse(text).body
        starts = [min([n.lineno] + [d.lineno for d in getattr(n, "decorator_list", [])]) for n in body]
        starts[0] = 1  # the module's head (comments, docstring) belongs to the first segment
        for i, node in enumerate(body):
            end = starts[i + 1] if i + 1 < len(body) else len(lines) + 1
            out.append(Segment(src.name, len(out), "".join(lines[starts[i] - 1 : end - 1]), node))
    return tuple(out)


def _cycle_from(chunks: Sequence[str], start: int) -> Iterator[str]:
    return islice(cycle(chunks), start, None)


BLANK_LINE = re.compile(r"(?<=\n\n)(?=[^\n])")


def _code_chunks(start: int, skip: int | None) -> Iterator[str]:
    """The code stream from segment ``start``, each segment cut after its blank lines (so needles can land
    between the methods of a long class), with a ``# File:`` line wherever the file changes."""
    previous = None
    for seg in islice(cycle(code_segments()), start, None):
        if seg.index == skip:
            continue
        head = FILE_HEADER.format(name=seg.file) if seg.file != previous else ""
        previous = seg.file
        pieces = BLANK_LINE.split(seg.text)
        yield head + pieces[0]
        yield from pieces[1:]


def fitted_context(hay: Haystack, units: int, pad: int,
                   needles: list[tuple[float, str]]) -> tuple[str, list[int], list[float]]:
    """``hay.context(units, needles)`` plus the first ``pad`` characters of the next atom: the partial atom lets a
    prompt reach its token target when the haystack's next atom is long (a table rule, an indentation run).
    Trailing whitespace is kept: stripping it would make the length jump by a whole indentation run."""
    ctx, offsets, achieved = hay.context(units, needles)
    if pad:
        ctx += hay.text(units + 1)[len(hay.text(units)):][:pad]
    return ctx, offsets, achieved


def n_chunks(kind: str) -> int:
    """How many chunks the stream of ``kind`` has before it wraps around."""
    return len({"prose_en": english_chunks, "prose_zh": chinese_chunks, "code": code_segments}[kind]())


def haystack(kind: str, start: int, skip_segment: int | None = None) -> Haystack:
    """The haystack of ``kind`` starting at chunk ``start`` (a code haystack leaves out segment ``skip_segment``)."""
    if kind == "prose_en":
        return Haystack(_cycle_from(english_chunks(), start), sep="\n\n")
    if kind == "prose_zh":
        return Haystack(_cycle_from(chinese_chunks(), start), sep="\n\n", atom=CJK_ATOM)
    if kind == "code":
        return Haystack(_code_chunks(start, skip_segment), sep="\n")
    raise ValueError(f"unknown haystack kind {kind!r}; valid: {', '.join(HAYSTACK_KINDS)}")
