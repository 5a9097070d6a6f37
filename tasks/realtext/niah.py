"""RULER-style needle retrieval in real English text: one needle (``niah_single``) or four needles of which one is
asked for and three are distractors with other keys (``niah_multikey``, RULER's ``niah_multikey_1`` shape).

Needle, question template and answer prefix are RULER's (`tasks/synthetic/ruler.py`, in RULER's singular wording
since one value is expected); keys are adjective-noun words, values 7-digit numbers, all drawn with
:class:`~tasks.realtext.draw.Draw`. The haystack is the ``prose_en`` stream (`tasks/realtext/haystacks.py`).
"""

from __future__ import annotations

from tasks.synthetic.base import Built, Plan, fill
from tasks.synthetic.filler import ADJECTIVES, NOUNS
from tasks.synthetic.ruler import (
    RULER_ANSWER_PREFIX,
    RULER_NEEDLE,
    RULER_TEMPLATE,
    TYPE_NEEDLE_V,
    singularise,
)

from .draw import Draw
from .haystacks import PAD_MAX, fitted_context, haystack, n_chunks

N_KEYS = {"niah_single": 1, "niah_multikey": 4}
MAX_NEW_TOKENS = 128  # RULER's generation budget for NIAH


def plan(task: str, draw: Draw, depth: float) -> Plan:
    """Needle 0 (the queried one) at ``depth``; distractor ``i`` at ``(depth + i / n) mod 1``."""
    n = N_KEYS[task]
    keys = draw.sample([f"{a}-{b}" for a in ADJECTIVES for b in NOUNS], n)
    values: list[str] = []
    while len(values) < n:
        v = str(1_000_000 + draw.below(9_000_000))
        if v not in values:
            values.append(v)
    start = draw.below(n_chunks("prose_en"))
    hay = haystack("prose_en", start)
    needles = [RULER_NEEDLE.format(type_needle_v=TYPE_NEEDLE_V, key=k, value=v) for k, v in zip(keys, values)]
    placed = [((depth + i / n) % 1.0 if i else depth, text + hay.sep) for i, text in enumerate(needles)]
    type_v = TYPE_NEEDLE_V[:-1]
    template, prefix = singularise(RULER_TEMPLATE), singularise(RULER_ANSWER_PREFIX)
    query = keys[0]
    tail = prefix.format(type_needle_v=type_v, query=query)

    def build(units: int, pad: int) -> Built:
        ctx, offsets, achieved = fitted_context(hay, units, pad, placed)
        prompt, begin = fill(template, ctx, type_needle_v=type_v, query=query)
        return Built(
            prompt=prompt + tail,
            answers=[values[0]],
            completion=f" {values[0]}.",
            context_start=begin,
            context_end=begin + len(ctx),
            needle_offsets=[begin + o for o in offsets],
            depth_achieved=achieved[0],
            extra={"keys": keys, "values": values, "query": query, "needles": needles, "haystack": "prose_en",
                   "haystack_start": start, "needle_depths": achieved},
        )

    return Plan(build=build, min_units=0, pad_max=PAD_MAX, depth=depth)
