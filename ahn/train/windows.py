"""The random window and sinks of each training forward (`docs/AHN.md` §8.4), or a fixed pair.

Why random: the paper's Table 4 shows a random window beats a fixed one (the AHN must work for whatever
window it is later run with). Why these filters: ``W_tot > L/8`` keeps enough tokens inside the window for the
student to be a sensible model; ``W_tot < L`` guarantees that some token leaves the window, so the AHN is
trained at all; ``sinks <= W_tot/2`` follows the official code (the paper says half the sequence length).

Draws are a pure function of ``(seed, micro-batch index)``, so a resumed or data-parallel run draws exactly
what an uninterrupted single-process run would, with no sampler state to save.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

PAPER_WINDOW_CANDIDATES: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
PAPER_SINK_CANDIDATES: tuple[int, ...] = (0, 32, 64, 128, 512, 2048, 4096)


class WindowError(ValueError):
    """No window fits the sequence: the AHN would never see an evicted token."""


@dataclass(frozen=True)
class Draw:
    """One forward's attention span: ``sinks`` + ``window`` (sinks not counted) = ``total`` = W_tot."""

    sinks: int
    window: int

    @property
    def total(self) -> int:
        return self.sinks + self.window


class _WindowSpec(Protocol):
    mode: str
    window_candidates: list[int]
    sink_candidates: list[int]
    min_fraction: float
    sinks: int
    window: int


def allowed_totals(length: int, candidates=PAPER_WINDOW_CANDIDATES, min_fraction: float = 0.125) -> list[int]:
    """W_tot candidates with ``min_fraction * L < W_tot < L`` (paper: L/8 < W_tot < L)."""
    return sorted(c for c in set(candidates) if min_fraction * length < c < length)


def allowed_sinks(total: int, candidates=PAPER_SINK_CANDIDATES) -> list[int]:
    """Sink candidates with ``s <= W_tot / 2`` (the official code's rule)."""
    return sorted(s for s in set(candidates) if 2 * s <= total)


class WindowSampler:
    """Draws ``Draw(sinks, window)`` for a micro-batch of length ``L`` (see the module docstring)."""

    def __init__(self, spec: _WindowSpec, seed: int = 0) -> None:
        self.spec, self.seed = spec, seed
        if spec.mode not in ("random", "fixed"):
            raise ValueError(f"window mode must be 'random' or 'fixed', got {spec.mode!r}")

    def draw(self, length: int, index: int) -> Draw:
        """The draw of micro-batch ``index`` (global, over the whole run) of sequence length ``length``."""
        spec = self.spec
        if spec.mode == "fixed":
            d = Draw(spec.sinks, spec.window)
            if d.total >= length:
                raise WindowError(
                    f"fixed window sinks+window = {spec.sinks}+{spec.window} = {d.total} is not smaller than the "
                    f"sequence length L={length}: no token leaves the window, so there is nothing for the AHN "
                    f"to learn (use a smaller window, longer sequences, or window.on_short='skip')")
            return d
        totals = allowed_totals(length, spec.window_candidates, spec.min_fraction)
        if not totals:
            raise WindowError(
                f"no window candidate fits a sequence of length L={length}: need {spec.min_fraction:g}*L = "
                f"{spec.min_fraction * length:g} < W_tot < {length} among window_candidates="
                f"{sorted(spec.window_candidates)} (use longer sequences, other candidates, or "
                f"window.on_short='skip')")
        rng = random.Random(f"ahn-window/{self.seed}/{index}")
        total = rng.choice(totals)
        sinks_ok = allowed_sinks(total, spec.sink_candidates)
        if not sinks_ok:
            raise WindowError(f"no sink candidate s <= W_tot/2 = {total / 2:g} among sink_candidates="
                              f"{sorted(spec.sink_candidates)} (add 0 to allow no sinks)")
        sinks = rng.choice(sinks_ok)
        return Draw(sinks, total - sinks)
