"""Real-text long-context tasks that need no download: needles, LV-Eval's factrecall and a code question hidden in
text the repository ships (`tasks/realtext/data`, checked against its manifest by `tasks/realtext/sources.py`).

``load("niah_single", [4096, 8192], 32, seed=0, tokenizer=tok)`` gives :class:`tasks.sample.Sample` objects whose
prompts have at most the requested number of tokens of ``tok`` (within 1 %; the byte count without a tokenizer),
fitted by the synthetic tasks' machinery (`tasks/synthetic/base.py`). Every choice comes from
:class:`~tasks.realtext.draw.Draw` (sha256 of the seed, task, length and index), so a sample is the same on every
machine and Python version. Sample ``i`` puts its needle at depth ``spread_depth(i)`` of the haystack and records
where it landed in tokens (``needle_token_offset``, ``needle_tokens_from_end``, ``beyond_window``). The tasks,
prompts, scorers and sources are described in `docs/REALTEXT.md`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tasks.sample import Sample
from tasks.synthetic.base import Generated, Plan, realise
from tasks.synthetic.lengths import CountTokens, count_bytes, level_label, token_counter

from . import code_qa, factrecall, niah
from . import sources as _sources
from .counting import PieceCounter
from .draw import Draw, sample_key, spread_depth

log = logging.getLogger(__name__)

FAMILY = "realtext"
TASKS: tuple[str, ...] = ("niah_single", "niah_multikey", "factrecall_en", "factrecall_zh", "code_default")
DEFAULT_LENGTHS: tuple[int, ...] = (4096, 8192, 16384, 32768, 65536, 131072)
DEFAULT_N_PER_LENGTH = 32
#: A needle is "beyond the window" when more than this many prompt tokens follow its first token: the span a
#: 128-sink + 3,968-token sliding window keeps at the end of the prompt.
WINDOW_TOKENS = 128 + 3968
LANGUAGE = {t: "zh" if t == "factrecall_zh" else "en" for t in TASKS}
MAX_NEW_TOKENS: dict[str, int] = {
    "niah_single": niah.MAX_NEW_TOKENS,
    "niah_multikey": niah.MAX_NEW_TOKENS,
    **factrecall.MAX_NEW_TOKENS,
    "code_default": code_qa.MAX_NEW_TOKENS,
}
HAYSTACK = {"niah_single": "prose_en", "niah_multikey": "prose_en", "factrecall_en": "prose_en",
            "factrecall_zh": "prose_zh", "code_default": "code"}


def check_task(name: str) -> None:
    if name not in TASKS:
        raise ValueError(f"unknown realtext task {name!r}; valid: {', '.join(TASKS)}")


def _plan(name: str, draw: Draw, depth: float, n_tokens: int, count_tokens: CountTokens) -> Plan:
    if name in niah.N_KEYS:
        return niah.plan(name, draw, depth)
    if name in factrecall.DATASET:
        return factrecall.plan(name, draw, depth)
    return code_qa.plan(name, draw, depth, n_tokens, count_tokens)


def generate(name: str, n_tokens: int, index: int, seed: int = 0, count_tokens: CountTokens = count_bytes,
             fast_count: CountTokens | None = None) -> Generated:
    """Sample ``index`` of ``realtext/<name>`` at ``n_tokens`` (the whole prompt, at most, within 1 %).

    ``fast_count`` (a :class:`~tasks.realtext.counting.PieceCounter` of ``count_tokens``) fits the prompt; the
    prompt's length and its needle's offset are then checked with ``count_tokens``, and on a disagreement the
    sample is fitted again with ``count_tokens`` alone (slower, same result as if it had been used throughout).
    """
    check_task(name)
    key = sample_key(seed, name, n_tokens, index)
    plan = _plan(name, Draw(key), spread_depth(index), n_tokens, count_tokens)
    if fast_count is None:
        return realise(name, plan, n_tokens, seed, count_tokens, tolerance=0.01)
    gen = realise(name, plan, n_tokens, seed, fast_count, tolerance=0.01)
    needle_char = plan.build(gen.extra["units"], gen.extra["pad"]).needle_offsets[0]
    if (count_tokens(gen.prompt) == gen.prompt_tokens
            and count_tokens(gen.prompt[:needle_char]) == gen.needle_token_offset):
        return gen
    log.warning("realtext/%s %d/%d: piecewise token count disagrees with the tokenizer; fitting again with "
                "whole-prompt counts", name, n_tokens, index)
    return realise(name, plan, n_tokens, seed, count_tokens, tolerance=0.01)


def to_sample(gen: Generated, index: int, counter: str) -> Sample:
    """A generated item as a harness :class:`Sample`, with where its needles landed in tokens."""
    offset = gen.needle_token_offset
    assert offset is not None  # every realtext task has a needle
    from_end = gen.prompt_tokens - offset
    kind = HAYSTACK[gen.name]
    extra: dict[str, Any] = {
        "depth": gen.depth,
        "depth_achieved": gen.depth_achieved,
        "needle_token_offset": offset,
        "needle_token_offsets": gen.needle_token_offsets,
        "needle_tokens_from_end": from_end,
        "needle_depth_tokens": offset / gen.prompt_tokens,
        "beyond_window": from_end > WINDOW_TOKENS,
        "window_tokens": WINDOW_TOKENS,
        "context_token_start": gen.context_token_start,
        "context_token_end": gen.context_token_end,
        "n_tokens": gen.n_tokens,
        "prompt_tokens": gen.prompt_tokens,
        "seed": gen.seed,
        "token_counter": counter,
        # the run manifest's data provenance (tasks/registry.py: data_provenance)
        "data": {"origin": "tasks/realtext/data", "sources": {s.name: s.sha256 for s in _sources.sources(kind)}},
        **gen.extra,
    }
    return Sample(
        task=f"{FAMILY}/{gen.name}",
        id=str(index),
        level=level_label(gen.n_tokens),
        prompt=gen.prompt,
        answers=list(gen.answers),
        language=LANGUAGE[gen.name],
        max_new_tokens=MAX_NEW_TOKENS[gen.name],
        extra=extra,
    )


def load(name: str, lengths: list[int], n_per_length: int, seed: int = 0, tokenizer: Any | None = None,
         *, count_tokens: CountTokens | None = None) -> list[Sample]:
    """``n_per_length`` samples of ``realtext/<name>`` at each length, counted in ``tokenizer``'s tokens
    (``len(tokenizer.encode(text))``), else with ``count_tokens``, else in UTF-8 bytes."""
    check_task(name)
    fast: CountTokens | None = None
    if tokenizer is not None:
        counter, label = token_counter(tokenizer), type(tokenizer).__name__
        fast = PieceCounter(counter)
    elif count_tokens is not None:
        counter, label = count_tokens, getattr(count_tokens, "__name__", "custom")
    else:
        counter, label = count_bytes, "bytes"
    jobs = [(n, i) for n in lengths for i in range(n_per_length)]
    workers = generation_workers(sum(n for n, _ in jobs)) if tokenizer is not None else 1
    if workers <= 1:
        return [to_sample(generate(name, n, i, seed, counter, fast), i, label) for n, i in jobs]
    # Counting a long prompt's tokens dominates (a 128k-token sample takes ~1-2 s of one core): the samples are
    # independent, so worker processes forked with the counters make them, each keeping its own piece cache.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_set_worker,
                             initargs=(name, seed, counter, fast)) as pool:
        made = list(pool.map(_generate_in_worker, jobs, chunksize=1))
    return [to_sample(gen, i, label) for gen, (_, i) in zip(made, jobs, strict=True)]


#: Below this many prompt tokens in one load, generation stays in this process (workers cost ~0.1 s to start).
PARALLEL_MIN_TOKENS = 4 * 131072
_WORKER: dict[str, Any] = {}


def generation_workers(total_tokens: int) -> int:
    """Processes that generate a load of ``total_tokens`` prompt tokens: the cores this process may use (fork
    start method only), or 1 for a small load."""
    if total_tokens < PARALLEL_MIN_TOKENS or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)


def _set_worker(name: str, seed: int, counter: CountTokens, fast: CountTokens | None) -> None:
    _WORKER.update(name=name, seed=seed, counter=counter, fast=fast)


def _generate_in_worker(job: tuple[int, int]) -> Generated:
    n, i = job
    return generate(_WORKER["name"], n, i, _WORKER["seed"], _WORKER["counter"], _WORKER["fast"])
