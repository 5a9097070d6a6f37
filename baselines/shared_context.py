"""One context prefilled once into a method's memory, then several questions: SCBench's two modes.

* **multi-request**: every question starts from the same compressed context (a snapshot of the cache after the
  context), isolated from the others;
* **multi-turn**: the questions come in turns on one cache; after each turn the history gets the previous
  answer (by default the reference answer the caller passes, SCBench's default; else the model's own).

Both are the *query-agnostic* protocol of a query-aware method: the context is compressed before any question is
seen, and the question is fed as a continuation (`extend`), which a method compressing the prompt only (SnapKV)
keeps uncompressed. Feeding context and question as one prompt (`baselines.engine.generate`) is the query-aware
protocol. Everything a request keeps lives in its `MemoryCache` (kept K/V, AHN's state and write gates, CT's slots,
the scattered methods' kept positions and scores), so a snapshot is a deep copy of it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from baselines.cache import MemoryCache
from baselines.engine import (
    _check,
    _forward,
    _stop_and_penalty,
    apply_repetition_penalty,
    decode_step,
    prefill,
)
from baselines.interface import MemoryMethod
from baselines.prefill_chunk import DEFAULT_CHUNK

MODES = ("multi-turn", "multi-request")


def snapshot(cache: MemoryCache) -> MemoryCache:
    """An independent copy of everything the request keeps; restoring is answering from another copy."""
    return copy.deepcopy(cache)


@torch.no_grad()
def extend(model: nn.Module, method: MemoryMethod, cache: MemoryCache, ids: torch.Tensor,
           chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Feed `ids` [B, T] after what `cache` holds, as a continuation of it (SnapKV does not compress these
    tokens: its context was compressed before them); returns the last position's logits [B, V]."""
    _check(model, method, chunk_size)
    if ids.shape[1] == 0:
        raise ValueError("cannot extend a cache with no tokens")
    logits = None
    for begin in range(0, ids.shape[1], chunk_size):
        end = min(begin + chunk_size, ids.shape[1])
        logits = _forward(model, cache, ids[:, begin:end], want_logits=end == ids.shape[1], decoding=True)
    return logits


@dataclass
class Turn:
    """One question's answer: its tokens, the logits each token was picked from, and the cache bytes."""

    tokens: list[int]
    logits: torch.Tensor  # [n, V], float32
    cache_bytes_before: int  # the cache the question was asked of (context, and earlier turns)
    prefill_s: float = 0.0  # feeding the question
    decode_s: float = 0.0  # picking the answer's tokens


@torch.no_grad()
def answer(model: nn.Module, method: MemoryMethod, cache: MemoryCache, question: torch.Tensor,
           max_new_tokens: int, chunk_size: int = DEFAULT_CHUNK, eos_token_id: int | list[int] | None = None,
           repetition_penalty: float | None = None) -> Turn:
    """Greedy answer to `question` [1, T] on `cache` (changed: it ends holding the question and the answer but
    its last token). The repetition penalty sees the question and the answer, as `generate` sees its prompt."""
    eos_ids, penalty = _stop_and_penalty(model, eos_token_id, repetition_penalty)
    before = cache.nbytes()
    t0 = time.perf_counter()
    logits = extend(model, method, cache, question, chunk_size)
    t1 = time.perf_counter()
    seen, tokens, picked = question, [], []
    for step in range(max_new_tokens):
        picked.append(logits[0].float())
        token = int(apply_repetition_penalty(logits, seen, penalty).argmax(-1)[0])
        if token in eos_ids:
            break
        tokens.append(token)
        if step == max_new_tokens - 1:
            break
        seen = torch.cat([seen, seen.new_tensor([[token]])], 1)
        logits = decode_step(model, method, cache, seen[:, -1])
    stacked = torch.stack(picked) if picked else torch.zeros(0, 0)
    return Turn(tokens=tokens, logits=stacked, cache_bytes_before=before, prefill_s=t1 - t0,
                decode_s=time.perf_counter() - t1)


@torch.no_grad()
def multi_request(model: nn.Module, method: MemoryMethod, context: torch.Tensor, questions: list[torch.Tensor],
                  max_new_tokens: int, chunk_size: int = DEFAULT_CHUNK, **kwargs) -> list[Turn]:
    """Prefill `context` once; answer each question from its own copy of that cache."""
    base = method.new_cache(model)
    prefill(model, method, base, context, chunk_size)
    return [answer(model, method, snapshot(base), q, max_new_tokens, chunk_size, **kwargs) for q in questions]


@torch.no_grad()
def multi_turn(model: nn.Module, method: MemoryMethod, context: torch.Tensor, questions: list[torch.Tensor],
               max_new_tokens: int, history: list[torch.Tensor | None] | None = None,
               chunk_size: int = DEFAULT_CHUNK, **kwargs) -> list[Turn]:
    """Prefill `context` once; ask the questions in turns on one cache. Before question i + 1 the cache gets
    `history[i]` (the ids of turn i's reference answer, SCBench's default), or, where it is None or no history is
    given, the model's own answer to turn i."""
    if history is not None and len(history) != len(questions):
        raise ValueError(f"history must give one answer per question ({len(questions)}), got {len(history)}")
    cache = method.new_cache(model)
    prefill(model, method, cache, context, chunk_size)
    turns: list[Turn] = []
    for i, question in enumerate(questions):
        asked = snapshot(cache)  # the answer is decoded on a copy; the history gets the chosen answer below
        turns.append(answer(model, method, asked, question, max_new_tokens, chunk_size, **kwargs))
        if i + 1 < len(questions):
            given = history[i] if history is not None else None
            said = given if given is not None else question.new_tensor([turns[-1].tokens])
            extend(model, method, cache, question, chunk_size)
            if said.shape[1]:
                extend(model, method, cache, said, chunk_size)
    return turns
