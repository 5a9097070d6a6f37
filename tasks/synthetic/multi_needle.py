"""k labelled pass keys in one haystack, one of them asked: the capacity probe of a fixed-size memory.

``passkey_k{k}`` (k in :data:`KS`) hides k needles "The pass key of <name> is <5 digits>. ..." among
InfiniteBench's noise lines and asks for the key of one name, so a model has to tell k stored items apart
instead of finding the only one. The needles sit in evenly spaced slots over the context except its last
:data:`CLEAR_CHARS` characters (at short lengths: over its first half at least), so with a window of a few
hundred tokens every needle has been evicted when the question comes; ``depth`` in [0, 1] shifts every
needle within its slot. Which needle is asked is drawn from the seed; its index and depth are recorded
(``asked``, ``needle_depths``) and its offset comes first in ``needle_offsets``. Names and keys are
distinct within a prompt. Scored like passkey: the first digit run of the answer must equal the key.
"""

from __future__ import annotations

import random

from ..prompts import INFINITEBENCH_OPEN_PROMPTS
from .base import Built, Plan, fill
from .filler import NAMES, noise_haystack

KS: tuple[int, ...] = (1, 2, 4, 8, 16)
TASK_NAMES: dict[str, int] = {f"passkey_k{k}": k for k in KS}
NEEDLE = "The pass key of {name} is {key}. Remember it. {key} is the pass key of {name}.\n"
QUESTION = "What is the pass key of {name}?"
# InfiniteBench's passkey prompt as it is (answer cue "The pass key is"): only the question names whose key is
# asked, so a model that knows passkey reads the format, and k = 1 is passkey with a name in the needle
TEMPLATE = INFINITEBENCH_OPEN_PROMPTS["passkey"]
# characters at the end of the context kept free of needles: more than the tiny presets' 480-token window
# plus a needle line (64 bytes) and the noise line a needle can be rounded by (~90 bytes)
CLEAR_CHARS = 720


def slot_depths(k: int, depth: float, eligible: float) -> list[float]:
    """Depths (fractions of the haystack) of k needles: slot j spans [j, j+1) / k of the eligible share."""
    return [eligible * (j + depth) / k for j in range(k)]


def passkey_k(k: int, seed: int, depth: float) -> Plan:
    """``k`` labelled pass keys (distinct names, distinct keys); the key of one of them is asked."""
    if k not in KS:
        raise ValueError(f"k must be one of {', '.join(map(str, KS))}, got {k}")
    rng = random.Random(seed)
    names = rng.sample(NAMES, k)
    keys: list[str] = []
    while len(keys) < k:
        key = "".join(str(rng.randint(0, 9)) for _ in range(5))
        if key not in keys:
            keys.append(key)
    asked = rng.randrange(k)
    needles = [NEEDLE.format(name=n, key=x) for n, x in zip(names, keys)]
    question = QUESTION.format(name=names[asked])
    hay = noise_haystack()

    def build(units: int, pad: int) -> Built:
        total = len(hay.text(units))
        eligible = max(0.5, 1.0 - CLEAR_CHARS / total) if total else 0.0
        depths = slot_depths(k, depth, eligible)
        order = [asked] + [j for j in range(k) if j != asked]  # the asked needle's offset comes first
        ctx, offsets, achieved = hay.context(units, [(depths[j], needles[j]) for j in order])
        ctx = ctx.rstrip(" ")
        prompt, start = fill(TEMPLATE, ctx, input=question)
        by_slot = dict(zip(order, achieved))
        return Built(
            prompt=prompt,
            answers=[keys[asked]],
            completion=f" {keys[asked]}",
            context_start=start,
            context_end=start + len(ctx),
            needle_offsets=[start + o for o in offsets],
            depth_achieved=achieved[0],
            extra={"input": question, "k": k, "asked": asked, "names": names,
                   "needle_depths": [by_slot[j] for j in range(k)]},
        )

    return Plan(build=build, min_units=0, depth=depth)
