"""Streaming engine: chunked prefill, one-token decode and greedy generation through a memory method.

Each prefill chunk attends to the kept tokens plus itself; tokens it pushes out of the window go into the
method's memory. Memory stays bounded by sinks + window + chunk, whatever the prompt length, and the result
equals a one-shot prefill. Logits are computed for the last prompt position only (the LM head never sees the
other prompt positions: `docs/DEFECTS.md` D2).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from baselines import fused_layers
from baselines.cache import MemoryCache
from baselines.interface import MemoryMethod, forward_context, is_attached
from baselines.prefill_chunk import DEFAULT_CHUNK


@dataclass
class GenerationResult:
    tokens: list[list[int]]  # generated ids per row, stop token excluded
    prefill_s: float
    decode_s: float
    prompt_tokens: int
    cache_bytes_after_prefill: int
    cache_bytes_final: int
    peak_mem_bytes: int | None
    stopped_by_eos: list[bool] = field(default_factory=list)
    # per row: the prefill's last logits held NaN or inf (non-finite weights, or an overflow in this dtype);
    # its tokens are then argmax of garbage, and the harness records the sample as failed
    nonfinite_logits: list[bool] = field(default_factory=list)

    @property
    def n_generated(self) -> int:
        return max((len(t) for t in self.tokens), default=0)


def _check(model: nn.Module, method: MemoryMethod, chunk_size: int) -> None:
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk size must be an integer >= 1, got {chunk_size!r}")
    if not is_attached(model, method):
        raise RuntimeError(f"{method!r} is not attached to this model: use `with attach(model, method):`")


def _forward(model: nn.Module, cache: MemoryCache, ids: torch.Tensor, want_logits: bool,
             decoding: bool = False) -> torch.Tensor | None:
    start = cache.seen
    positions = torch.arange(start, start + ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
    with forward_context(cache, ids.shape[1], decoding=decoding):
        if want_logits:
            out = model(input_ids=ids, position_ids=positions, use_cache=False, logits_to_keep=1)
            return out.logits[:, -1].float()
        model.base_model(input_ids=ids, position_ids=positions, use_cache=False)
        return None


@torch.no_grad()
def prefill(
    model: nn.Module, method: MemoryMethod, cache: MemoryCache, input_ids: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK, progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Feed `input_ids` [B, T] in chunks; return the logits [B, V] of the last position."""
    _check(model, method, chunk_size)
    total = input_ids.shape[1]
    if total == 0:
        raise ValueError("cannot prefill an empty prompt")
    logits = None
    with fused_layers.maybe(model, input_ids.device):  # on CUDA by default (baselines/fused_layers.py)
        for begin in range(0, total, chunk_size):
            end = min(begin + chunk_size, total)
            logits = _forward(model, cache, input_ids[:, begin:end], want_logits=end == total)
            if progress is not None:
                progress(end, total)
    return logits


@torch.no_grad()
def decode_step(model: nn.Module, method: MemoryMethod, cache: MemoryCache, token_ids: torch.Tensor) -> torch.Tensor:
    """One new token per row ([B] or [B, 1]); returns its next-token logits [B, V]."""
    _check(model, method, 1)
    return _forward(model, cache, token_ids.view(-1, 1), want_logits=True, decoding=True)


def apply_repetition_penalty(logits: torch.Tensor, seen_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """HF semantics: logits of already-seen tokens are divided by `penalty` if positive, else multiplied."""
    if penalty == 1.0:
        return logits
    picked = logits.gather(1, seen_ids)
    picked = torch.where(picked < 0, picked * penalty, picked / penalty)
    return logits.scatter(1, seen_ids, picked)


def generation_defaults(model: nn.Module) -> tuple[list[int], float]:
    """EOS ids and repetition penalty from the model's generation_config (Qwen2.5-Instruct: 1.05)."""
    cfg = getattr(model, "generation_config", None)
    eos = getattr(cfg, "eos_token_id", None) if cfg is not None else None
    if eos is None:
        eos = getattr(model.config, "eos_token_id", None)
    eos_ids = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    penalty = getattr(cfg, "repetition_penalty", None) if cfg is not None else None
    return eos_ids, float(penalty) if penalty else 1.0


def _stop_and_penalty(model: nn.Module, eos_token_id: int | list[int] | None,
                      repetition_penalty: float | None) -> tuple[list[int], float]:
    """The EOS ids and repetition penalty asked for, each defaulting to the model's generation_config."""
    default_eos, default_penalty = generation_defaults(model)
    eos_ids = default_eos if eos_token_id is None else ([eos_token_id] if isinstance(eos_token_id, int)
                                                        else list(eos_token_id))
    return eos_ids, default_penalty if repetition_penalty is None else float(repetition_penalty)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def generate(
    model: nn.Module,
    method: MemoryMethod,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    chunk_size: int = DEFAULT_CHUNK,
    eos_token_id: int | list[int] | None = None,
    repetition_penalty: float | None = None,
    cache: MemoryCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[list[int]], bool] | None = None,
) -> GenerationResult:
    """Greedy generation; EOS ids and repetition penalty default to the model's generation_config.

    ``stop(tokens)``, when given, is asked after each new token of a row (its tokens so far); True ends that
    row like EOS does, the token kept (lm-eval's ``until`` strings stop generation this way).
    """
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    eos_ids, penalty = _stop_and_penalty(model, eos_token_id, repetition_penalty)
    cache = cache if cache is not None else method.new_cache(model)
    device = input_ids.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    _sync(device)
    t0 = time.perf_counter()
    logits = prefill(model, method, cache, input_ids, chunk_size, progress)
    _sync(device)
    prefill_s = time.perf_counter() - t0
    after_prefill = cache.nbytes()
    nonfinite = (~torch.isfinite(logits).reshape(logits.shape[0], -1).all(-1)).tolist()

    batch = input_ids.shape[0]
    seen = input_ids
    out: list[list[int]] = [[] for _ in range(batch)]
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    by_eos = torch.zeros_like(done)
    eos_tensor = torch.tensor(eos_ids, device=device, dtype=torch.long)
    t1 = time.perf_counter()
    for step in range(max_new_tokens):
        next_ids = apply_repetition_penalty(logits, seen, penalty).argmax(-1)
        is_eos = torch.isin(next_ids, eos_tensor) if eos_ids else torch.zeros_like(done)
        stopped = torch.zeros_like(done)
        for row in range(batch):
            if not done[row] and not is_eos[row]:
                out[row].append(int(next_ids[row]))
                if stop is not None and stop(out[row]):
                    stopped[row] = True
        by_eos |= is_eos & ~done
        done |= is_eos | stopped
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        seen = torch.cat([seen, next_ids[:, None]], dim=1)
        logits = decode_step(model, method, cache, next_ids)
    _sync(device)
    decode_s = time.perf_counter() - t1
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return GenerationResult(
        tokens=out, prefill_s=prefill_s, decode_s=decode_s, prompt_tokens=int(input_ids.shape[1]),
        cache_bytes_after_prefill=after_prefill, cache_bytes_final=cache.nbytes(), peak_mem_bytes=peak,
        stopped_by_eos=[bool(d) for d in by_eos], nonfinite_logits=[bool(x) for x in nonfinite],
    )


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class DecoderPool:
    """Keeps the last `StaticDecoder` (and its captured graph) for reuse by the next batch of the same shape.

    Only one is kept: a decoder's buffers are the size of B whole caches."""

    def __init__(self, graphs: bool | None = None) -> None:
        self.graphs = graphs
        self._key: tuple | None = None
        self._decoder = None
        self.captures = 0

    def get(self, model: nn.Module, method: MemoryMethod, batch: int, max_tokens: int, penalty: float):
        from baselines.static_decode import StaticDecoder

        layout = method.decode_layout(max_tokens)
        key = (id(model), id(method), batch, layout, penalty)
        if self._key != key:
            self._decoder = None  # free the old buffers first
            if model.device.type == "cuda":
                torch.cuda.empty_cache()
            self._decoder = StaticDecoder(model, method, batch, max_tokens, penalty, graphs=self.graphs)
            self._decoder.capture()
            self.captures += int(self._decoder._graph is not None)
            self._key = key
        return self._decoder


def static_decode_supported(method: MemoryMethod) -> bool:
    """True when `method` can decode through fixed buffers (`baselines.static_decode`)."""
    return method.decode_layout(2) is not None


@torch.no_grad()
def generate_many(
    model: nn.Module,
    method: MemoryMethod,
    prompts: list[torch.Tensor],
    max_new_tokens: int | list[int],
    chunk_size: int = DEFAULT_CHUNK,
    eos_token_id: int | list[int] | None = None,
    repetition_penalty: float | None = None,
    pool: DecoderPool | None = None,
    batch: int | None = None,
) -> list[GenerationResult]:
    """Greedy generation for several prompts ([1, T_i] each): each is prefilled alone (chunked, as `generate`),
    then all decode together, one token per row and step, through a `StaticDecoder`.

    Per prompt the tokens equal `generate(...)` on that prompt alone (the static step computes the eager step's
    function; ties of bf16 logits may break differently on a GPU). `prefill_s` is each prompt's own;
    `decode_s` and `peak_mem_bytes` are the batch's, shared by its rows. `batch` pads the decoder to that many
    rows (default: len(prompts)), so one captured graph serves batches of any size up to it."""
    n = len(prompts)
    if n == 0:
        return []
    news = [max_new_tokens] * n if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(news) != n or any(not isinstance(m, int) or m < 0 for m in news):
        raise ValueError(f"max_new_tokens must be an integer >= 0 (or one per prompt), got {max_new_tokens!r}")
    rows = batch or n
    if rows < n:
        raise ValueError(f"batch of {rows} rows cannot hold {n} prompts")
    eos_ids, penalty = _stop_and_penalty(model, eos_token_id, repetition_penalty)
    device = prompts[0].device
    max_tokens = _round_up(max(int(p.shape[1]) for p in prompts) + max(news) + 1, 1024)
    pool = pool if pool is not None else DecoderPool()
    decoder = pool.get(model, method, rows, max_tokens, penalty)
    decoder.reset()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    eos = set(eos_ids)
    out: list[list[int]] = [[] for _ in range(n)]
    done = [m == 0 for m in news]
    stopped = [False] * n
    prefill_s, after_prefill, final = [0.0] * n, [0] * n, [0] * n
    nonfinite = [False] * n
    for row, ids in enumerate(prompts):
        cache = method.new_cache(model)
        _sync(device)
        t0 = time.perf_counter()
        logits = prefill(model, method, cache, ids, chunk_size)
        nonfinite[row] = not bool(torch.isfinite(logits).all())
        first = int(apply_repetition_penalty(logits, ids, penalty).argmax(-1)[0])
        _sync(device)
        prefill_s[row], after_prefill[row] = time.perf_counter() - t0, cache.nbytes()
        if not done[row]:
            if first in eos:
                done[row] = stopped[row] = True
            else:
                out[row].append(first)
                done[row] = len(out[row]) >= news[row]
        decoder.load(row, cache, ids, first)
        if done[row]:  # as in `generate`, a token that ends the row is never fed
            final[row] = decoder.row_nbytes(row)
        del cache, logits

    _sync(device)
    t1 = time.perf_counter()
    while not all(done):
        picked = decoder.step().tolist()
        for row in range(n):
            if done[row]:
                continue
            if picked[row] in eos:
                done[row] = stopped[row] = True
            else:
                out[row].append(picked[row])
                done[row] = len(out[row]) >= news[row]
            if done[row]:  # the bytes the eager cache holds when this row stops (later steps are padding)
                final[row] = decoder.row_nbytes(row)
    _sync(device)
    decode_s = time.perf_counter() - t1
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return [GenerationResult(tokens=[out[r]], prefill_s=prefill_s[r], decode_s=decode_s,
                             prompt_tokens=int(prompts[r].shape[1]), cache_bytes_after_prefill=after_prefill[r],
                             cache_bytes_final=final[r], peak_mem_bytes=peak,
                             stopped_by_eos=[stopped[r]], nonfinite_logits=[nonfinite[r]])
            for r in range(n)]
