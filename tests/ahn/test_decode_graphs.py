"""CUDA-graph decode switch: on by default, off by env or argument, never capturing on the CPU.

The graph itself is compared with eager decode on a GPU (`tests/ahn/test_fla_gpu.py`)."""

from __future__ import annotations

import torch

from ahn.decode_graphs import ENV_SWITCH, can_capture
from baselines import attach, make_method
from baselines.engine import decode_step, prefill
from tests.tiny_models import randomize_ahn, tiny_model


def test_switch_defaults_on_and_env_turns_it_off(monkeypatch):
    assert make_method("ahn-gdn", sinks=2, window=8).decode_graphs
    assert not make_method("ahn-gdn", sinks=2, window=8, decode_graphs=False).decode_graphs
    monkeypatch.setenv(ENV_SWITCH, "0")
    assert not make_method("ahn-dn", sinks=2, window=8).decode_graphs
    assert make_method("ahn-dn", sinks=2, window=8, decode_graphs=True).decode_graphs


def test_cpu_decode_never_captures():
    assert not can_capture(torch.zeros(1))
    model = tiny_model()
    method = make_method("ahn-gdn", sinks=2, window=8, decode_graphs=True)
    with attach(model, method):
        randomize_ahn(method)
        cache = method.new_cache(model)
        logits = prefill(model, method, cache, torch.arange(20)[None] % 300, chunk_size=7)
        for _ in range(3):
            logits = decode_step(model, method, cache, logits.argmax(-1))
        assert cache.layers[0].memory["state"] is not None  # the memory step really ran
    assert method.graphs.captures == 0 and len(method.graphs) == 0
