"""Length labels of the generated task families: ``4k`` = 4096 tokens (a leaf module, torch-free)."""

from __future__ import annotations

import re

MAX_LENGTH_TOKENS = 4 * 1024 * 1024  # 4m: 4x the longest context any supported model reads (1M, Qwen2.5-1M)


def parse_length(label: str) -> int:
    """A synthetic length label as tokens: ``4k`` = 4096, ``1m`` = 1048576, ``3000`` = 3000 (at most 4m)."""
    m = re.fullmatch(r"\s*(\d{1,12})\s*([kKmM]?)\s*", label)
    if not m:
        raise ValueError(f"bad length {label!r}; use an integer token count or a label like 4k, 128k, 1m")
    n = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if n <= 0:
        raise ValueError(f"bad length {label!r}: must be positive")
    if n > MAX_LENGTH_TOKENS:
        raise ValueError(f"bad length {label!r}: {n:,} tokens is over the limit of {MAX_LENGTH_TOKENS:,} (4m)")
    return n


def check_length_levels(name: str | None, levels: tuple[str, ...]) -> None:
    """The level check of a family whose levels are prompt lengths: each must parse (`parse_length`)."""
    for level in levels:
        parse_length(level)
