"""A question over real Python source whose answer comes from the syntax tree: the default value of one parameter
of one top-level function (``code_default``).

The haystack is the ``code`` stream of standard-library segments (`tasks/realtext/haystacks.py`). The function
asked about is one of its segments, moved (with a ``# File:`` line) to the requested depth and left out of the
stream, so it appears once. The answer is the default's exact source text, ``ast.get_source_segment`` of the
default expression in the frozen file (one line). Candidates are top-level functions whose name is defined only once in
their file, whose default is a one-line expression of at most 40 characters other than ``None``, ``True`` and
``False`` (too easy to guess), and whose segment takes at most a quarter of the prompt's tokens.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache

from tasks.synthetic.base import Built, Plan, fill
from tasks.synthetic.lengths import CountTokens

from .draw import Draw
from .haystacks import FILE_HEADER, PAD_MAX, code_segments, fitted_context, haystack, n_chunks
from .sources import read_text

TEMPLATE = (
    "Below are functions, classes and other statements from several files of the Python standard library; each "
    "file starts with a \"# File:\" line.\n\n{context}\n\n"
    "Question: In the file {path}, what is the default value of the parameter `{param}` of the function "
    "`{function}`? Answer with the default value exactly as it is written in the source code.\nAnswer:"
)
MAX_NEW_TOKENS = 32
MAX_DEFAULT_CHARS = 40
TOO_EASY = frozenset({"None", "True", "False"})


@dataclass(frozen=True)
class Candidate:
    file: str
    segment: int  # index into code_segments()
    function: str
    param: str
    default: str  # source text of the default expression
    segment_chars: int


def _defaults(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[str, ast.expr]]:
    """(parameter name, default expression) of every parameter that has a default, in signature order."""
    a = fn.args
    positional = a.posonlyargs + a.args
    out = list(zip([p.arg for p in positional[len(positional) - len(a.defaults):]], a.defaults))
    out += [(p.arg, d) for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
    return out


def one_line_source(line: str, expr: ast.expr) -> str:
    """The source text of a one-line expression (what ``ast.get_source_segment`` gives; the column offsets of
    ``ast`` nodes count UTF-8 bytes)."""
    return line.encode("utf-8")[expr.col_offset : expr.end_col_offset].decode("utf-8")


@cache
def candidates() -> tuple[Candidate, ...]:
    """Every admissible (function, parameter) of the code stream, in stream order."""
    segs = code_segments()
    out: list[Candidate] = []
    by_file: dict[str, list] = {}
    for seg in segs:
        by_file.setdefault(seg.file, []).append(seg)
    for file, file_segs in by_file.items():
        lines = read_text(file).split("\n")
        names: dict[str, int] = {}
        for seg in file_segs:
            for node in ast.walk(seg.node):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names[node.name] = names.get(node.name, 0) + 1
        for seg in file_segs:
            fn = seg.node
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) or names[fn.name] != 1:
                continue
            for param, expr in _defaults(fn):
                if expr.end_lineno != expr.lineno or expr.end_col_offset is None:
                    continue
                src = one_line_source(lines[expr.lineno - 1], expr)
                if len(src) > MAX_DEFAULT_CHARS or src in TOO_EASY:
                    continue
                out.append(Candidate(file, seg.index, fn.name, param, src, len(seg.text)))
    return tuple(out)


def plan(task: str, draw: Draw, depth: float, n_tokens: int, count_tokens: CountTokens) -> Plan:
    """Ask about a candidate whose segment (with its ``# File:`` line) has at most ``n_tokens // 4`` tokens."""
    segs = code_segments()
    fitting = [c for c in candidates()
               if count_tokens(FILE_HEADER.format(name=c.file) + segs[c.segment].text) <= n_tokens // 4]
    if not fitting:
        raise ValueError(f"realtext/{task}: no function of the code sources fits a {n_tokens}-token prompt")
    cand = draw.choice(fitting)
    start = draw.below(n_chunks("code"))
    hay = haystack("code", start, skip_segment=cand.segment)
    needle = FILE_HEADER.format(name=cand.file) + code_segments()[cand.segment].text
    placed = [(depth, needle)]
    fields = {"path": cand.file, "param": cand.param, "function": cand.function}

    def build(units: int, pad: int) -> Built:
        ctx, offsets, achieved = fitted_context(hay, units, pad, placed)
        prompt, begin = fill(TEMPLATE, ctx, **fields)
        return Built(
            prompt=prompt,
            answers=[cand.default],
            completion=f" {cand.default}",
            context_start=begin,
            context_end=begin + len(ctx),
            needle_offsets=[begin + o for o in offsets],
            depth_achieved=achieved[0],
            extra={**fields, "segment": cand.segment, "haystack": "code", "haystack_start": start,
                   "needle_depths": achieved},
        )

    return Plan(build=build, min_units=0, pad_max=PAD_MAX, depth=depth)
