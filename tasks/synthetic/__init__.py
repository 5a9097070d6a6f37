"""Length-controllable synthetic long-context tasks: the tiny world's benchmark and training data.

``load("passkey", [1024, 4096], 8)`` gives :class:`tasks.sample.Sample` objects whose prompts are exactly
(within 1 %) the requested number of tokens, with needles at evenly spread depths. Generators are seeded
and never touch the global ``random`` state, so the same arguments always give the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from typing import Any

from ..prompts import INFINITEBENCH_MAX_GEN
from ..sample import Sample
from . import infinitebench_style as ib
from . import multi_needle, ruler
from .base import Generated, Plan, realise
from .lengths import CountTokens, LengthError, count_bytes, count_words, level_label, token_counter

GENERATORS: dict[str, Callable[..., Plan]] = {
    "passkey": ib.passkey,
    "number_string": ib.number_string,
    "kv_retrieval": ib.kv_retrieval,
    "math_find": ib.math_find,
    "math_calc": ib.math_calc,
    "code_run": ib.code_run,
    **{name: partial(ruler.niah, name) for name in ruler.RULER_SHAPES},
    **{name: partial(multi_needle.passkey_k, k) for name, k in multi_needle.TASK_NAMES.items()},
}
TASKS: tuple[str, ...] = tuple(GENERATORS)
INFINITEBENCH_TASKS: tuple[str, ...] = (
    "passkey",
    "number_string",
    "kv_retrieval",
    "math_find",
    "math_calc",
    "code_run",
)
RULER_TASKS: tuple[str, ...] = tuple(ruler.RULER_SHAPES)
MULTI_PASSKEY_TASKS: tuple[str, ...] = tuple(multi_needle.TASK_NAMES)

__all__ = [
    "INFINITEBENCH_TASKS",
    "MULTI_PASSKEY_TASKS",
    "RULER_TASKS",
    "TASKS",
    "Generated",
    "LengthError",
    "count_bytes",
    "count_words",
    "default_depths",
    "generate",
    "level_label",
    "load",
    "max_new_tokens",
    "sample_seed",
    "to_sample",
]


def _check(name: str) -> None:
    if name not in GENERATORS:
        raise ValueError(f"unknown synthetic task {name!r}; valid: {', '.join(TASKS)}")


def generate(
    name: str,
    n_tokens: int,
    depth: float | None = 0.5,
    seed: int = 0,
    count_tokens: CountTokens | None = None,
    tolerance: float | None = 0.01,
    **options: Any,
) -> Generated:
    """One sample of task ``name`` whose whole prompt has ``n_tokens`` tokens (at most, within ``tolerance``).

    ``depth`` in [0, 1] is where the (first) needle sits in the context (``None``: 0.5; math_calc has no
    needle and ignores it); ``options`` go to the task
    (``subtype`` for math_find, ``levels`` for code_run, ``haystack="prose"`` for the RULER tasks).
    """
    _check(name)
    if depth is None:  # as recorded by math_calc samples, which have no needle
        depth = 0.5
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must lie in [0, 1], got {depth}")
    plan = GENERATORS[name](seed, depth, **options)
    return realise(name, plan, n_tokens, seed, count_tokens or count_bytes, tolerance)


def max_new_tokens(name: str, gen: Generated, count_tokens: CountTokens = count_bytes) -> int:
    """Generation budget: the benchmark's (`docs/BENCHMARKS.md` B1; RULER 128), never too short to write the answer.

    math_calc has no fixed budget at other lengths: it gets exactly the length of its full answer (B1's
    30,000 belongs to 30,000-number expressions). The other tasks keep B1's value unless the reference
    answer is longer in this tokenizer (a byte-level model needs 4 tokens for a median like ``49.5``).
    """
    need = count_tokens(gen.completion)
    if name == "math_calc":
        return need
    if name in ruler.RULER_SHAPES:
        base = ruler.RULER_MAX_NEW_TOKENS
    else:  # the labelled pass keys are answered like passkey
        base = INFINITEBENCH_MAX_GEN["passkey" if name in multi_needle.TASK_NAMES else name]
    return max(base, need)


def default_depths(n: int) -> list[float]:
    """``n`` depths evenly spread over [0, 1] (both ends included); 0.5 for a single sample."""
    if n <= 1:
        return [0.5]
    return [i / (n - 1) for i in range(n)]


def sample_seed(seed: int, name: str, n_tokens: int, index: int) -> int:
    """The seed of one sample, derived from the run seed so samples are independent of each other."""
    return random.Random(f"synthetic/{name}/{n_tokens}/{index}/{seed}").getrandbits(32)


def _options(name: str, index: int) -> dict[str, Any]:
    """Cycle through the task's variants so every level gets a balanced mix (as InfiniteBench's file does)."""
    if name == "math_find":
        return {"subtype": ib.MATH_FIND_SUBTYPES[index % len(ib.MATH_FIND_SUBTYPES)]}
    if name == "code_run":
        return {"levels": ib.CODE_RUN_LEVELS[index % len(ib.CODE_RUN_LEVELS)]}
    return {}


def to_sample(gen: Generated, index: int, count_tokens: CountTokens, counter: str) -> Sample:
    """Wrap a generated item as a harness :class:`Sample`."""
    extra: dict[str, Any] = {
        "depth": gen.depth,
        "depth_achieved": gen.depth_achieved,
        "needle_token_offset": gen.needle_token_offset,
        "needle_token_offsets": gen.needle_token_offsets,
        "context_token_start": gen.context_token_start,
        "context_token_end": gen.context_token_end,
        "n_tokens": gen.n_tokens,
        "prompt_tokens": gen.prompt_tokens,
        "seed": gen.seed,
        "token_counter": counter,
        **gen.extra,
    }
    return Sample(
        task=f"synthetic/{gen.name}",
        id=str(index),
        level=level_label(gen.n_tokens),
        prompt=gen.prompt,
        answers=list(gen.answers),
        language="en",
        max_new_tokens=max_new_tokens(gen.name, gen, count_tokens),
        extra=extra,
    )


def load(
    name: str,
    lengths: list[int],
    n_per_length: int,
    seed: int = 0,
    tokenizer: Any | None = None,
    depths: list[float] | None = None,
    *,
    count_tokens: CountTokens | None = None,
    tolerance: float | None = 0.01,
) -> list[Sample]:
    """``n_per_length`` samples of ``synthetic/<name>`` at each target prompt length.

    Tokens are counted with ``tokenizer.encode`` when given, else with ``count_tokens``, else as UTF-8
    bytes (exact for the project's byte-level tokenizer). Depths cycle through ``depths`` (default: spread
    evenly over [0, 1]). ``level`` is the length label (``"4k"``), ``id`` the index within the level.
    """
    _check(name)
    if tokenizer is not None:
        counter, label = token_counter(tokenizer), type(tokenizer).__name__
    elif count_tokens is not None:
        counter, label = count_tokens, getattr(count_tokens, "__name__", "custom")
    else:
        counter, label = count_bytes, "bytes"
    spread = list(depths) if depths else default_depths(n_per_length)
    samples: list[Sample] = []
    for n_tokens in lengths:
        for i in range(n_per_length):
            gen = generate(
                name,
                n_tokens,
                depth=spread[i % len(spread)],
                seed=sample_seed(seed, name, n_tokens, i),
                count_tokens=counter,
                tolerance=tolerance,
                **_options(name, i),
            )
            samples.append(to_sample(gen, i, counter, label))
    return samples
