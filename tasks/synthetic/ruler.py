"""RULER-style needle-in-a-haystack tasks (`docs/BENCHMARKS.md` D), at any length and depth.

Needle, template and answer prefix are RULER's; keys are adjective-noun words from a built-in list and
values 7-digit numbers. The haystack is InfiniteBench's noise line (RULER ``niah_single_1``'s haystack) by
default, or this project's seeded prose; RULER's essays are not available offline. Like RULER, a prompt
with exactly one expected value is put in the singular.
"""

from __future__ import annotations

import random

from .base import Built, Plan, fill
from .filler import ADJECTIVES, NOUNS, Haystack, noise_haystack, prose_haystack

RULER_NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
RULER_TEMPLATE = (
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
    "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?"
)
RULER_ANSWER_PREFIX = " The special magic {type_needle_v} for {query} mentioned in the provided text are"
RULER_MAX_NEW_TOKENS = 128
TYPE_NEEDLE_V = "numbers"

# (keys, values per key, keys queried) for each task
RULER_SHAPES: dict[str, tuple[int, int, int]] = {
    "niah_single": (1, 1, 1),
    "niah_multikey": (4, 1, 1),
    "niah_multivalue": (1, 4, 1),
    "niah_multiquery": (4, 1, 4),
}


def singularise(text: str) -> str:
    """RULER's wording for a single expected value (applied to the template before it is filled)."""
    for old, new in (("Some", "A"), ("are all", "is"), ("are", "is"), ("answers", "answer")):
        text = text.replace(old, new)
    return text


def _join(words: list[str]) -> str:
    """RULER's query list: ``a, b, and c``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + ", and " + words[-1]


def niah(name: str, seed: int, depth: float, haystack: str = "noise") -> Plan:
    """Build a RULER NIAH plan of shape ``RULER_SHAPES[name]``.

    Needle ``i`` goes to depth ``(depth + i / n_needles) mod 1``, so needle 0 (a queried one) sits at the
    requested depth and the others are spread evenly over the context.
    """
    n_keys, n_values, n_queries = RULER_SHAPES[name]
    rng = random.Random(seed)
    words = rng.sample([f"{a}-{n}" for a in ADJECTIVES for n in NOUNS], n_keys)
    numbers = rng.sample(range(1_000_000, 10_000_000), n_keys * n_values)
    values = {k: [str(v) for v in numbers[i * n_values : (i + 1) * n_values]] for i, k in enumerate(words)}
    queries = words[:n_queries]
    needles = [
        RULER_NEEDLE.format(type_needle_v=TYPE_NEEDLE_V, key=k, value=v) for k in words for v in values[k]
    ]
    # needle 0 belongs to queries[0]; shuffle the query order shown to the model as RULER does
    shown = list(queries)
    rng.shuffle(shown)
    answers = [v for q in shown for v in values[q]]
    query = _join(shown)
    template, prefix, type_v = RULER_TEMPLATE, RULER_ANSWER_PREFIX, TYPE_NEEDLE_V
    if len(answers) == 1:
        template, prefix, type_v = singularise(template), singularise(prefix), TYPE_NEEDLE_V[:-1]
    if haystack == "noise":
        hay: Haystack = noise_haystack()
    elif haystack == "prose":
        hay = prose_haystack(seed)
    else:
        raise ValueError(f"unknown haystack {haystack!r}; valid: noise, prose")
    placed = [
        ((depth + i / len(needles)) % 1.0 if i else depth, text + hay.sep) for i, text in enumerate(needles)
    ]
    tail = prefix.format(type_needle_v=type_v, query=query)
    completion = " " + (answers[0] if len(answers) == 1 else _join(answers)) + "."

    def build(units: int, pad: int) -> Built:
        ctx, offsets, achieved = hay.context(units, placed)
        ctx = ctx.rstrip(" \n")  # RULER joins lines with "\n": no trailing separator before "\n<question>"
        prompt, start = fill(template, ctx, type_needle_v=type_v, query=query)
        prompt += tail
        return Built(
            prompt=prompt,
            answers=list(answers),
            completion=completion,
            context_start=start,
            context_end=start + len(ctx),
            needle_offsets=[start + o for o in offsets],
            depth_achieved=achieved[0],
            extra={"keys": words, "query": query, "haystack": haystack, "needle_depths": achieved},
        )

    return Plan(build=build, min_units=0, depth=depth)
