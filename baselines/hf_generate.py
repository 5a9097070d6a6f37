"""Stock `model.generate(...)` through an attached memory method.

`generate` builds its own `DynamicCache` and hands it to every forward. While a method is attached, a forward
pre-hook on the causal LM swaps that (empty) cache for a `MethodCache`: a `transformers.Cache` whose state is
the method's `MemoryCache`, so what `generate` keeps between steps is exactly what the harness's engine keeps
(sinks + window + the method's memory), never the full KV. The hook also prefills a long prompt in chunks, as
the engine does (`baselines.engine.prefill`), so memory stays bounded by sinks + window + chunk; only the last
chunk goes through the model's own forward, which computes the logits. `generate`'s later decode steps each
run one token against the same cache.

What cannot run through the method is refused with an error that says so: beam search (a bounded memory cannot
be reordered after the fact), padded batches (the engine has no padding mask), `inputs_embeds`, and a cache
that already holds tokens from outside the method.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache, CacheLayerMixin

from baselines.cache import MemoryCache
from baselines.interface import MemoryMethod, forward_context
from baselines.prefill_chunk import DEFAULT_CHUNK

#: the keyword the model's forward takes its cache by (transformers >= 5.25 says `cache`, earlier 5.x
#: `past_key_values`); the hook reads whichever the call uses
CACHE_KEYS = ("cache", "past_key_values")


class _PassThroughLayer(CacheLayerMixin):
    """One layer of a `MethodCache`: the new keys/values go to the attention function as they are (it keeps
    what the method keeps, in the `MemoryCache`); lengths come from the request's `MemoryCache`."""

    def __init__(self, owner: MethodCache) -> None:
        super().__init__()
        self.owner = owner
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        return None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        return key_states, value_states

    def get_seq_length(self) -> int:
        return self.owner.memory.seen

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.owner.memory.seen + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        raise NotImplementedError(
            f"beam search cannot run through {self.owner.method!r}: a bounded memory cannot be reordered; "
            "use greedy or sampled generation (num_beams=1)")


class MethodCache(Cache):
    """A `transformers.Cache` whose state is a memory method's `MemoryCache` (`.memory`)."""

    def __init__(self, model: nn.Module, method: MemoryMethod, memory: MemoryCache | None = None) -> None:
        self.method = method
        self.memory = memory if memory is not None else method.new_cache(model)
        super().__init__(layers=[_PassThroughLayer(self) for _ in range(model.config.num_hidden_layers)])

    def nbytes(self) -> int:
        """Bytes the method keeps for this request (`MemoryCache.nbytes`)."""
        return self.memory.nbytes()


def _cache_key(kwargs: dict) -> str | None:
    return next((k for k in CACHE_KEYS if kwargs.get(k) is not None), None)


def _method_cache(model: nn.Module, method: MemoryMethod, cache) -> MethodCache:
    if isinstance(cache, MethodCache):
        if cache.method is not method:
            raise RuntimeError(f"this cache belongs to {cache.method!r}, not to the attached {method!r}")
        return cache
    if cache.get_seq_length() != 0:
        raise RuntimeError(
            f"generate was given a {type(cache).__name__} that already holds {cache.get_seq_length()} tokens, "
            f"computed without {method!r}; start from an empty cache (or none) inside `attach`")
    return MethodCache(model, method)


def _check_inputs(method: MemoryMethod, ids, kwargs: dict) -> None:
    if ids is None:
        raise NotImplementedError(f"generate with inputs_embeds cannot run through {method!r}; pass input_ids")
    mask = kwargs.get("attention_mask")
    if isinstance(mask, torch.Tensor) and mask.ndim == 2 and not bool(mask.all()):
        raise NotImplementedError(
            f"a padded batch (attention_mask with zeros) cannot run through {method!r}: generate one prompt "
            "at a time, or batches of prompts of equal length")


class GenerateHooks:
    """The pre/post forward hooks `attach` installs on the causal LM; `remove()` takes them off."""

    def __init__(self, model: nn.Module, method: MemoryMethod, chunk_size: int = DEFAULT_CHUNK) -> None:
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk size must be an integer >= 1, got {chunk_size!r}")
        self.model, self.method, self.chunk_size = model, method, chunk_size
        self._open: list = []
        self._handles = [
            model.register_forward_pre_hook(self._before, with_kwargs=True),
            model.register_forward_hook(self._after, always_call=True),
        ]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()

    def _before(self, module: nn.Module, args: tuple, kwargs: dict):
        self._open.append(None)  # popped by `_after` (which runs even when this hook raises)
        key = _cache_key(kwargs)
        if key is None:  # the engine's own forwards (use_cache=False, no cache) and plain model(...) calls
            return None
        cache = _method_cache(module, self.method, kwargs[key])
        ids = kwargs.get("input_ids", args[0] if args else None)
        _check_inputs(self.method, ids, kwargs)
        from baselines.engine import _forward

        memory = cache.memory
        tail = self.chunk_size if ids.shape[1] > self.chunk_size else ids.shape[1]
        head = ids.shape[1] - tail
        with torch.no_grad():  # a long prompt: all but its last chunk prefilled as the engine does
            for begin in range(0, head, self.chunk_size):
                _forward(module, memory, ids[:, begin:min(begin + self.chunk_size, head)], want_logits=False)
        ids = ids[:, head:]
        kwargs = dict(kwargs)
        args = ()
        kwargs[key] = cache
        kwargs["input_ids"] = ids
        kwargs["position_ids"] = torch.arange(memory.seen, memory.seen + ids.shape[1],
                                              device=ids.device).expand(ids.shape[0], -1)
        kwargs.pop("attention_mask", None)  # all ones (checked); the method's attention reads no mask
        context = forward_context(memory, ids.shape[1])
        context.__enter__()
        self._open[-1] = context
        return args, kwargs

    def _after(self, module: nn.Module, args: tuple, output):
        context = self._open.pop() if self._open else None
        if context is not None:
            context.__exit__(None, None, None)
        return None
