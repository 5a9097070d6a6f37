"""The switch of AHN's prefill-chunk graphs (`ahn.chunk_graphs`); the graphs themselves need CUDA and are held to
the eager update in `tests/ahn/test_fla_gpu.py`."""

from __future__ import annotations

import pytest
import torch

from ahn import chunk_graphs
from baselines import attach, make_method
from baselines.engine import prefill
from tests.tiny_models import randomize_ahn, tiny_model


def test_the_setting_defaults_to_off_and_names_the_valid_values(monkeypatch):
    monkeypatch.delenv(chunk_graphs.ENV_SWITCH, raising=False)
    assert chunk_graphs.setting() == "0"
    monkeypatch.setenv(chunk_graphs.ENV_SWITCH, "yes")
    with pytest.raises(ValueError, match="AHN_HARNESS_CHUNK_GRAPHS='yes'; valid: 0, 1"):
        chunk_graphs.setting()


def test_on_the_cpu_the_update_stays_eager(monkeypatch):
    """Switched on, a CPU prefill whose chunks evict 256 tokens captures nothing and runs the eager update."""
    monkeypatch.setenv(chunk_graphs.ENV_SWITCH, "1")
    model = tiny_model("qwen2", dtype=torch.float32)
    method = make_method("ahn-gdn", sinks=4, window=256)
    with attach(model, method):
        randomize_ahn(method)
        prefill(model, method, method.new_cache(model), torch.randint(0, 300, (1, 4 + 256 * 4)), chunk_size=256)
        assert not method._chunk_graphed(torch.zeros(1, 256, 8))
    assert (method.chunk_graphs.captures, method.chunk_graphs.replays) == (0, 0)
