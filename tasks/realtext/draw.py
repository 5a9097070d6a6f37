"""Random choices defined by sha256 alone, so a sample is the same on every machine and Python version.

``random.Random``'s streams are an implementation detail of CPython (its seeding of strings and its
``sample``/``choice`` algorithms have changed between versions); here every draw is the first 8 bytes of
``sha256(key + "#" + counter)`` read as a big-endian integer, and integers below ``n`` come from rejection
sampling, so the whole sequence follows from the key and these few lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")
_SPAN = 1 << 64


class Draw:
    """A counter-based stream of random choices keyed by ``parts`` (joined with ``/``)."""

    def __init__(self, *parts: object) -> None:
        self.key = "/".join(str(p) for p in parts)
        self._counter = 0

    def bits64(self) -> int:
        """The next 64-bit draw."""
        digest = hashlib.sha256(f"{self.key}#{self._counter}".encode()).digest()
        self._counter += 1
        return int.from_bytes(digest[:8], "big")

    def below(self, n: int) -> int:
        """Uniform integer in ``[0, n)`` (rejection sampling keeps it exactly uniform)."""
        if n <= 0:
            raise ValueError(f"below() needs n > 0, got {n}")
        limit = _SPAN - _SPAN % n
        while True:
            x = self.bits64()
            if x < limit:
                return x % n

    def uniform(self) -> float:
        """A float in ``[0, 1)`` with 53 random bits."""
        return (self.bits64() >> 11) / float(1 << 53)

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.below(len(seq))]

    def sample(self, seq: Sequence[T], k: int) -> list[T]:
        """``k`` distinct elements in draw order (a partial Fisher-Yates shuffle of a copy)."""
        if not 0 <= k <= len(seq):
            raise ValueError(f"cannot draw {k} of {len(seq)} elements")
        pool = list(seq)
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


def sample_key(seed: int, task: str, n_tokens: int, index: int) -> str:
    """The key of one sample's stream: the run seed, the task, the target length and the index."""
    return f"realtext/{task}/{n_tokens}/{index}/{seed}"


def spread_depth(index: int) -> float:
    """Depth of sample ``index``: the base-2 van der Corput sequence of ``index + 1`` (0.5, 0.25, 0.75, ...).

    Every prefix is spread evenly over (0, 1), and a sample's depth does not depend on how many are drawn,
    so ``--limit 2`` gives the first two samples of the full set.
    """
    n, depth, scale = index + 1, 0.0, 0.5
    while n:
        depth += scale * (n & 1)
        n >>= 1
        scale /= 2
    return depth
