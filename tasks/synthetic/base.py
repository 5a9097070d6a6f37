"""What every synthetic generator returns, and the length-fitting driver they share.

A task is a *plan*: the random choices that do not depend on the length (the pass key, the queried key,
...) are drawn once, and ``build(units, pad)`` lays out a prompt of that size. :func:`realise` fits the
plan to a token budget and measures where the needles ended up, in tokens of the real prompt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .lengths import CountTokens, count_bytes, fit_units


@dataclass
class Built:
    """One laid-out prompt.

    ``needle_offsets`` are character offsets in ``prompt``; the first is the needle placed at the requested
    depth (the queried one for multi-key tasks). ``completion`` is what a perfect model writes after the
    prompt (used by the training corpus and by oracle tests).
    """

    prompt: str
    answers: list[Any]
    completion: str
    context_start: int
    context_end: int
    needle_offsets: list[int] = field(default_factory=list)
    depth_achieved: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """A length-independent draw of one sample, with how to lay it out at any size."""

    build: Callable[[int, int], Built]
    min_units: int = 0
    pad_max: int = 0
    depth: float | None = None  # None: the task has no single needle (math_calc)


@dataclass
class Generated:
    """A fitted sample, before it becomes a :class:`tasks.sample.Sample`."""

    name: str
    prompt: str
    answers: list[Any]
    completion: str
    n_tokens: int
    prompt_tokens: int
    seed: int
    depth: float | None
    depth_achieved: float | None
    needle_token_offset: int | None
    needle_token_offsets: list[int]
    context_token_start: int
    context_token_end: int
    extra: dict[str, Any]


def fill(template: str, context: str, **fields: str) -> tuple[str, int]:
    """``template.format(context=context, **fields)`` and the character offset of the context in it.

    The two sides of ``{context}`` are formatted separately so a context full of braces (JSON, code) is
    never parsed as a format string.
    """
    head, tail = template.split("{context}", 1)
    head = head.format(**fields)
    return head + context + tail.format(**fields), len(head)


def realise(
    name: str,
    plan: Plan,
    n_tokens: int,
    seed: int,
    count_tokens: CountTokens = count_bytes,
    tolerance: float | None = 0.01,
) -> Generated:
    """Fit ``plan`` to ``n_tokens`` (the whole prompt) and locate its needles in tokens."""
    units, pad, total = fit_units(
        lambda u, p: count_tokens(plan.build(u, p).prompt),
        n_tokens,
        min_units=plan.min_units,
        pad_max=plan.pad_max,
        tolerance=tolerance,
    )
    b = plan.build(units, pad)
    special = count_tokens("")  # tokens a tokenizer adds to any text (a BOS), counted once per prompt

    def tokens_before(offset: int) -> int:
        """Token index of character ``offset``; counts the shorter side (a 128k encode is not free)."""
        if offset <= len(b.prompt) // 2:
            return count_tokens(b.prompt[:offset])
        return total - count_tokens(b.prompt[offset:]) + special

    offsets = [tokens_before(o) for o in b.needle_offsets]
    extra = dict(b.extra)
    extra["units"] = units
    extra["pad"] = pad
    return Generated(
        name=name,
        prompt=b.prompt,
        answers=b.answers,
        completion=b.completion,
        n_tokens=n_tokens,
        prompt_tokens=total,
        seed=seed,
        depth=plan.depth,
        depth_achieved=b.depth_achieved,
        needle_token_offset=offsets[0] if offsets else None,
        needle_token_offsets=offsets,
        context_token_start=tokens_before(b.context_start),
        context_token_end=tokens_before(b.context_end),
        extra=extra,
    )


def sub_rng(seed: int, purpose: str) -> random.Random:
    """An independent stream for one purpose, so drawing more filler never shifts the other choices."""
    return random.Random(f"{seed}/{purpose}")
