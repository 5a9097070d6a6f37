"""One context, several questions (`baselines/shared_context.py`): every method's state snapshots and restores,
multi-request and multi-turn equal recomputing from scratch, and the two protocols of a query-aware method."""

from __future__ import annotations

import inspect

import pytest
import torch

from ahn.method import AHNMethod
from baselines import attach, make_method
from baselines.engine import prefill
from baselines.registry import get_spec, method_names
from baselines.shared_context import answer, extend, multi_request, multi_turn, snapshot
from tests.tiny_models import randomize_ahn, tiny_model

METHODS = [m for m in method_names() if m != "ahn"]  # `ahn` is `ahn-gdn` with its cell as an argument


def _method(name: str):
    spec = get_spec(name)
    if not spec.cost_class().bounded:
        return make_method(name)
    takes = inspect.signature(spec.method_class()).parameters  # a method sets only what it takes (sinks-only:
    wanted = {"sinks": 2, "window": 8, "slots": 3}                 # no window)
    return make_method(name, **{k: v for k, v in wanted.items() if k in takes and k not in spec.fixed})


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen2")


def _ids(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 300, (1, n), generator=torch.Generator().manual_seed(seed))


def _tensors(cache) -> list[torch.Tensor]:
    return [t for layer in cache.layers for t in layer.tensors()] + [t for layer in cache.layers
                                                                     for t in layer.memory.values()]


@pytest.mark.parametrize("name", METHODS)
def test_restore_then_the_same_question_gives_identical_logits(model, name):
    method = _method(name)
    context, question = _ids(30, 0), _ids(5, 1)
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)  # the memory is read: its state must be restored too
        base = method.new_cache(model)
        prefill(model, method, base, context, chunk_size=7)
        before = [t.clone() for t in _tensors(base)]
        first_cache = snapshot(base)
        first = answer(model, method, first_cache, question, max_new_tokens=4, eos_token_id=[])
        again = answer(model, method, snapshot(base), question, max_new_tokens=4, eos_token_id=[])
        unrestored = answer(model, method, first_cache, question, max_new_tokens=4, eos_token_id=[])
    assert torch.equal(first.logits, again.logits) and first.tokens == again.tokens
    assert all(torch.equal(a, b) for a, b in zip(before, _tensors(base), strict=True))  # the copy was changed
    assert not torch.equal(first.logits[0], unrestored.logits[0])  # asked of the changed cache: another answer


@pytest.mark.parametrize("name", ["swa", "snapkv", "tova", "ahn-gdn"])
def test_multi_request_and_multi_turn_equal_recomputing(model, name):
    method = _method(name)
    context, questions = _ids(30, 2), [_ids(4, 3), _ids(6, 4)]
    gold = [_ids(3, 5), None]  # turn 1's reference answer goes into the history
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)
        requests = multi_request(model, method, context, questions, max_new_tokens=3, eos_token_id=[])
        turns = multi_turn(model, method, context, questions, max_new_tokens=3, history=gold, eos_token_id=[])
        for q, got in zip(questions, requests, strict=True):  # each from a fresh prefill of the context
            fresh = method.new_cache(model)
            prefill(model, method, fresh, context)
            want = answer(model, method, fresh, q, max_new_tokens=3, eos_token_id=[])
            assert torch.equal(got.logits, want.logits)
        fresh = method.new_cache(model)
        prefill(model, method, fresh, context)
        extend(model, method, fresh, questions[0])
        extend(model, method, fresh, gold[0])
        want = answer(model, method, fresh, questions[1], max_new_tokens=3, eos_token_id=[])
    assert torch.equal(turns[0].logits, requests[0].logits)  # the first turn is a first request
    assert torch.equal(turns[1].logits, want.logits)
    assert turns[1].cache_bytes_before >= requests[1].cache_bytes_before


def test_query_agnostic_snapkv_keeps_the_question_uncompressed(model):
    """Query-aware: the question inside the compressed prompt (budget tokens stay). Query-agnostic: the context
    is compressed before the question, which is appended as it is (budget + question tokens)."""
    method = make_method("snapkv", sinks=0, window=10, window_size=4)
    context, question = _ids(30, 6), _ids(5, 7)
    with attach(model, method):
        aware = method.new_cache(model)
        prefill(model, method, aware, torch.cat([context, question], 1))
        agnostic = method.new_cache(model)
        prefill(model, method, agnostic, context)
        extend(model, method, agnostic, question)
    assert aware.num_kept == 10 and agnostic.num_kept == 15
    assert agnostic.kept_positions(0)[0, 0, -5:].tolist() == list(range(30, 35))


def test_bad_history_is_named(model):
    method = make_method("swa", sinks=1, window=4)
    with attach(model, method), pytest.raises(ValueError, match="one answer per question \\(2\\), got 1"):
        multi_turn(model, method, _ids(10, 0), [_ids(2, 1), _ids(2, 2)], 2, history=[None])
