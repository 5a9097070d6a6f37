"""`RawTokens` against the plain concatenation of the kept and the new tokens (exact: each answer is a copy or a
view of the same numbers), and what a full-window chunk still copies."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from baselines import attach, make_method
from baselines import split_attention as split
from baselines.engine import prefill
from baselines.raw_tokens import RawTokens
from tests.tiny_models import randomize_ahn, tiny_model


def _parts(n_old: int, c: int) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(n_old * 100 + c)
    old = torch.randn(1, 2, n_old, 3, generator=g) if n_old else None
    new = torch.randn(1, 2, c, 3, generator=g)
    return old, new, new if old is None else torch.cat([old, new], 2)


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


@pytest.mark.parametrize(("n_old", "c"), [(0, 4), (6, 1), (7, 5)])
def test_every_request_equals_the_concatenation(n_old, c):
    old, new, ref = _parts(n_old, c)
    n = n_old + c
    for start, length in itertools.combinations_with_replacement(range(n + 1), 2):
        raw = RawTokens(old, new)
        got = raw.narrow(start, length - start)
        assert torch.equal(got, ref[:, :, start:length])
        if start >= n_old or length <= n_old:  # inside one part: a view of it, nothing copied
            assert _storage(got) == _storage(new if start >= n_old else old)
    for a, b, d in itertools.product(range(n + 1), repeat=3):  # two ranges [0, a) and [b, b + d)
        if b + d > n:
            continue
        got = RawTokens(old, new).select([(0, a), (b, d)])
        assert torch.equal(got, torch.cat([ref[:, :, :a], ref[:, :, b:b + d]], 2))


@pytest.mark.parametrize(("n_old", "c", "sinks", "keep_idx"), [(9, 4, 2, 6), (9, 4, 0, 4), (5, 3, 2, 2),
                                                               (0, 6, 2, 4)])
def test_the_kept_tokens_serve_their_prefixes_as_views(n_old, c, sinks, keep_idx):
    old, new, ref = _parts(n_old, c)
    raw = RawTokens(old, new)
    kept = raw.keep(sinks, keep_idx)
    assert torch.equal(kept, torch.cat([ref[:, :, :sinks], ref[:, :, keep_idx:]], 2))
    for tail in range(n_old + c - keep_idx + 1):
        got = raw.select([(0, sinks), (keep_idx, tail)])
        assert torch.equal(got, kept[:, :, :sinks + tail])
        # a view of the kept tokens or of a part, never a copy of its own
        assert _storage(got) in {_storage(t) for t in (kept, new, old) if t is not None}
    assert raw._all is None or keep_idx == sinks  # nothing asked for all of them (unless that is what stays)


class _Cats(TorchDispatchMode):
    """Counts concatenations along the sequence (dim 2) of 4-D tensors, by their output length."""

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.cat.default and out.ndim == 4 and (args[1] if len(args) > 1 else 0) in (2, -2):
            self.lengths.append(out.shape[2])
        return out


@pytest.mark.parametrize("name", ["swa", "ahn-gdn"])
def test_a_full_window_chunk_copies_its_window_once_per_tensor(monkeypatch, name):
    """Through the split path, a chunk past the full window copies the window into the kept keys and values
    and nowhere else: two window-sized concatenations per layer (before, six: the raw tokens, the kept ones and
    piece A's keys, each for keys and values)."""
    sinks, window, chunk = 3, 10, 4
    model = tiny_model("qwen2", dtype=torch.float64)
    method = make_method(name, sinks=sinks, window=window)
    ids = torch.randint(0, 300, (1, 28), generator=torch.Generator().manual_seed(3))
    monkeypatch.setenv(split.ENV, "split-reference")
    with attach(model, method):
        if name.startswith("ahn"):
            randomize_ahn(method)
        cache = method.new_cache(model)
        prefill(model, method, cache, ids[:, :24], chunk_size=chunk)  # the window is full from token 13 on
        cats = _Cats()
        with cats:
            prefill(model, method, cache, ids[:, 24:], chunk_size=chunk)
    window_sized = [n for n in cats.lengths if n >= window]
    assert window_sized == [sinks + window] * (2 * model.config.num_hidden_layers)
