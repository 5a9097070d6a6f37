"""Token counting and length fitting for the synthetic generators.

A generator describes a prompt by an integer number of haystack *units* (filler words, key/value pairs,
list elements, functions) plus an optional whitespace *pad*; :func:`fit_units` searches both so that the
real, fully formatted prompt lands on the requested token count. Measuring the finished prompt (instead of
adding up per-piece estimates) keeps the result exact for any tokenizer whose count grows with the text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CountTokens = Callable[[str], int]


class LengthError(ValueError):
    """The requested length cannot be reached (too short for the template, or outside the tolerance)."""


def count_bytes(text: str) -> int:
    """UTF-8 byte count: exact token count for the project's byte-level tokenizer (no special tokens)."""
    return len(text.encode("utf-8"))


def count_words(text: str) -> int:
    """Whitespace-separated word count; a crude stand-in for a word-level tokenizer (used by tests)."""
    return len(text.split())


def token_counter(tokenizer: Any | None = None) -> CountTokens:
    """``len(tokenizer.encode(text))`` when a tokenizer is given, else the byte counter."""
    if tokenizer is None:
        return count_bytes
    return lambda text: len(tokenizer.encode(text))


def level_label(n_tokens: int) -> str:
    """``"1k"``, ``"2k"``, ... ``"128k"`` for powers of two times 1024; the plain integer otherwise."""
    if n_tokens > 0 and n_tokens % 1024 == 0:
        q = n_tokens // 1024
        if q & (q - 1) == 0:
            return f"{q}k"
    return str(n_tokens)


def _largest_at_most(f: Callable[[int], int], target: int, lo: int, hint: int, step: int = 1) -> int:
    """Largest ``k >= lo`` with ``f(k) <= target`` for a (near-)nondecreasing ``f``; ``f(lo) <= target``.

    Gallops from ``hint`` (first step ``step``, doubling) to bracket the answer, then bisects, so a good
    hint costs only a few calls of ``f`` (each call formats and counts a whole prompt, which matters with
    a real tokenizer at 128k).
    """
    hint = max(lo, hint)
    step = max(1, step)
    if f(hint) <= target:
        good = hint
        while True:
            probe = good + step
            if f(probe) > target:
                bad = probe
                break
            good, step = probe, step * 2
    else:
        bad = hint
        while True:
            probe = max(lo, bad - step)
            if f(probe) <= target:
                good = probe
                break
            bad, step = probe, step * 2
    while bad - good > 1:
        mid = (good + bad) // 2
        if f(mid) <= target:
            good = mid
        else:
            bad = mid
    return good


def fit_units(
    measure: Callable[[int, int], int],
    target: int,
    *,
    min_units: int = 0,
    pad_max: int = 0,
    tolerance: float | None = 0.01,
) -> tuple[int, int, int]:
    """Choose ``(units, pad)`` so that ``measure(units, pad)`` is at most ``target`` and as close as possible.

    ``measure`` returns the token count of the prompt built from that many units and pad characters;
    the third value returned is that count. When even ``min_units`` overshoots the target the smallest
    prompt is returned if ``tolerance`` is ``None`` (the training corpus accepts that) and
    :class:`LengthError` is raised otherwise. The result must lie within ``tolerance`` (relative) of
    ``target``. Secant steps find the unit count in a handful of measurements when the count grows about
    linearly, as it does for every task here.
    """
    cache: dict[tuple[int, int], int] = {}

    def m(units: int, pad: int = 0) -> int:
        key = (units, pad)
        if key not in cache:
            cache[key] = measure(units, pad)
        return cache[key]

    base = m(min_units)
    if base > target:
        if tolerance is None:
            return min_units, 0, base
        raise LengthError(f"target {target} tokens is below the smallest prompt of this task ({base} tokens)")
    k, prev = min_units + 16, min_units
    for _ in range(3):  # secant steps anchored at the smallest prompt
        t = m(k)
        if t <= base or k == prev:
            break
        prev, k = k, max(min_units, min_units + round((target - base) * (k - min_units) / (t - base)))
    units = _largest_at_most(m, target, min_units, k, step=max(1, abs(k - prev) // 8))

    def best_pad(u: int) -> int:
        """Most pad characters keeping the count <= target; none if they add no tokens (words)."""
        if pad_max <= 0 or m(u) > target:
            return 0
        lo, hi = 0, pad_max
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if m(u, mid) <= target:
                lo = mid
            else:
                hi = mid - 1
        return lo if m(u, lo) > m(u) else 0

    pad = best_pad(units)
    got = m(units, pad)
    if tolerance is None or target - got <= tolerance * target:
        return units, pad, got
    # the count need not be exactly monotone (random draws differ per unit count): try the neighbours
    candidates = [(target - got, units, pad)]
    for reach in (2, 8, 32, 128):
        for u in range(max(min_units, units - reach), units + reach + 1):
            p = best_pad(u)
            if m(u, p) <= target:
                candidates.append((target - m(u, p), u, p))
        if min(candidates)[0] <= tolerance * target:
            break
    _, units, pad = min(candidates)
    got = m(units, pad)
    if target - got > tolerance * target:
        raise LengthError(f"reached {got} tokens for a target of {target} (tolerance {tolerance:.1%})")
    return units, pad, got
