"""GPU only: the FlexAttention fast path equals the masked-SDPA reference for every method's mask."""

from __future__ import annotations

import os

import pytest
import torch

from baselines import attach, make_method
from baselines.engine import prefill
from tests.tiny_models import randomize_ahn, tiny_model

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)


@pytest.mark.parametrize("name", ["full", "swa", "ahn-gdn"])
@pytest.mark.parametrize("chunk", [64, 100, 1000])
def test_flex_equals_reference(name, chunk, monkeypatch):
    model = tiny_model("qwen2", hidden_size=128, num_attention_heads=4, num_key_value_heads=2).cuda()
    ids = torch.randint(0, 300, (1, 1000), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    outs = {}
    for flex in ("1", "0"):
        monkeypatch.setenv("AHN_HARNESS_FLEX", flex)
        method = make_method(name) if name == "full" else make_method(name, sinks=16, window=200)
        torch.manual_seed(0)  # the AHN cells are built (randomly) at attach: same seed, same cells
        with attach(model, method):
            if name.startswith("ahn"):
                randomize_ahn(method)
            outs[flex] = prefill(model, method, method.new_cache(model), ids, chunk_size=chunk)
    assert os.environ["AHN_HARNESS_FLEX"] == "0"
    rel = (outs["1"] - outs["0"]).norm() / outs["0"].norm()
    assert rel.item() < 1e-4
