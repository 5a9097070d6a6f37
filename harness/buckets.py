"""Length buckets: which length group a sample's score and cost are reported under.

A sample's bucket is its ``level`` when the benchmark defines one (LV-Eval's ``"16k"`` … ``"256k"``, counted
in words/characters by LV-Eval; the synthetic tasks' target-length labels), because that is how those
benchmarks publish and compare. Otherwise it is a power-of-two bin of the prompt length in tokens *before*
truncation (the length the sample asks the model to handle, identical across methods and truncation limits):

    ``0-4k``     [0, 4096)
    ``4k-8k``    [4096, 8192)
    ``8k-16k``   [8192, 16384)
    ``16k-32k``  [16384, 32768)
    ``32k-64k``  [32768, 65536)
    ``64k-128k`` [65536, 131072)
    ``128k+``    [131072, ∞)

Here ``k`` = 1024 tokens. Buckets sort by length (``bucket_sort_key``), never alphabetically.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

K = 1024
FIRST_EDGE = 4 * K  # everything shorter shares the first bin
LAST_EDGE = 128 * K  # everything longer shares the open-ended last bin
UNKNOWN = "unknown"
ALL = "all"

_UNITS = {"": 1, "k": K, "m": K * K}
_NUM = r"(\d+(?:\.\d+)?)\s*([kKmM]?)"
_LABEL_RE = re.compile(rf"^\s*{_NUM}\s*(?:(\+)|-\s*{_NUM})?\s*$")


def _fmt(tokens: int) -> str:
    return "0" if tokens == 0 else f"{tokens // K}k"


def edges() -> list[int]:
    """Bin edges in tokens: 0, 4k, 8k, … 128k (the last bin is open-ended)."""
    out = [0]
    edge = FIRST_EDGE
    while edge <= LAST_EDGE:
        out.append(edge)
        edge *= 2
    return out


def length_bin(tokens: int | float | None) -> str:
    """The power-of-two bin label of a prompt length in tokens (``unknown`` when missing)."""
    if tokens is None or (isinstance(tokens, float) and not math.isfinite(tokens)) or tokens < 0:
        return UNKNOWN
    if tokens >= LAST_EDGE:
        return f"{_fmt(LAST_EDGE)}+"
    if tokens < FIRST_EDGE:
        return f"0-{_fmt(FIRST_EDGE)}"
    lo = FIRST_EDGE
    while tokens >= 2 * lo:
        lo *= 2
    return f"{_fmt(lo)}-{_fmt(2 * lo)}"


def bucket_of(record: dict[str, Any]) -> str:
    """The bucket a sample belongs to: its level when present, else the bin of its pre-truncation length."""
    level = record.get("level")
    if level is not None and str(level).strip():
        return str(level).strip()
    tokens = record.get("prompt_tokens_before")
    if tokens is None:
        tokens = record.get("prompt_tokens")
    return length_bin(tokens)


def record_bucket(record: dict[str, Any]) -> str:
    """The bucket stored in the record by the runner, or computed by ``bucket_of`` for older lines."""
    stored = record.get("bucket")
    return str(stored) if stored not in (None, "") else bucket_of(record)


def bucket_sort_key(label: str) -> tuple[int, float, float, str]:
    """Orders buckets by the length they stand for (start, then end); unparsable labels after them, then
    ``unknown``, then ``all``."""
    if label == ALL:
        return (3, 0.0, 0.0, label)
    if label == UNKNOWN:
        return (2, 0.0, 0.0, label)
    m = _LABEL_RE.match(label)
    if not m:
        return (1, 0.0, 0.0, label)
    start = float(m.group(1)) * _UNITS[m.group(2).lower()]
    end = float(m.group(4)) * _UNITS[m.group(5).lower()] if m.group(4) else math.inf
    return (0, start, end, label)


def sort_buckets(labels: Iterable[str]) -> list[str]:
    """Distinct bucket labels in length order."""
    return sorted(set(labels), key=bucket_sort_key)


def bucket_lower_tokens(label: str) -> float | None:
    """The length (in the label's own unit) where a bucket starts; None for labels that carry none."""
    m = _LABEL_RE.match(label)
    return float(m.group(1)) * _UNITS[m.group(2).lower()] if m else None
