"""The fused norm and MLP (`baselines.fused_layers`) against the Hugging Face modules they replace.

The plain functions repeat the modules' operations in the same order, so they agree bit for bit; the compiled
ones may sum the norm's mean in another order, so a prefill through them runs in fp64 and differs from the
unfused one near fp64's rounding (~1e-16 relative). The engine returns fp32 logits, and two fp64 values that
close can still round to neighbouring fp32 values: the bound is two fp32 steps (2**-22) of the largest logit.
A wrong weight or epsilon lands near 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from baselines import attach, fused_layers, make_method
from baselines.engine import prefill
from tests.tiny_models import tiny_model


def _counts(model: nn.Module) -> int:
    layers = model.model.layers
    return 3 * len(layers) + 1  # two norms and an MLP a layer, and the final norm


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_plain_functions_equal_the_modules_bit_for_bit(family):
    model = tiny_model(family, dtype=torch.float64)
    x = torch.randn(2, 5, model.config.hidden_size, dtype=torch.float64)
    layer = model.model.layers[0]
    norm, mlp = layer.input_layernorm, layer.mlp
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)  # not all ones, so a dropped weight shows
        assert torch.equal(fused_layers.rms_norm(x, norm.weight, norm.variance_epsilon), norm(x))
        assert torch.equal(fused_layers.gated_mlp(x, mlp.gate_proj.weight, mlp.up_proj.weight,
                                                  mlp.down_proj.weight), mlp(x))


def test_every_norm_and_mlp_is_replaced_and_restored():
    model = tiny_model("qwen2", dtype=torch.float64)
    x = torch.randn(1, 4, model.config.hidden_size, dtype=torch.float64)
    norm = model.model.norm
    before = norm(x)
    with fused_layers.fused_layers(model, compiled=False) as n:
        assert n == _counts(model)
        assert "forward" in norm.__dict__ and torch.equal(norm(x), before)
    assert not any("forward" in m.__dict__ for m in model.modules())


class OnePlusRMSNorm(nn.Module):
    """Gemma's convention: scale by 1 + weight. Shaped like the others, computing something else."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(width, dtype=torch.float64))
        self.variance_epsilon = 1e-6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return (1 + self.weight) * h


def test_a_module_of_another_convention_keeps_its_forward():
    model = tiny_model("qwen2", dtype=torch.float64)
    model.model.norm = OnePlusRMSNorm(model.config.hidden_size)
    model.model.layers[0].mlp.act_fn = nn.GELU()  # an MLP of another activation
    with fused_layers.fused_layers(model, compiled=False) as n:
        assert n == _counts(model) - 2
        assert "forward" not in model.model.norm.__dict__
        assert "forward" not in model.model.layers[0].mlp.__dict__
        assert "forward" in model.model.layers[1].mlp.__dict__


def test_the_setting_is_checked(monkeypatch):
    monkeypatch.setenv(fused_layers.ENV, "yes")
    with pytest.raises(ValueError, match="AHN_HARNESS_FUSED_LAYERS='yes'; valid: 0, 1, force"):
        fused_layers.enabled(torch.device("cpu"))
    monkeypatch.setenv(fused_layers.ENV, "1")
    assert not fused_layers.enabled(torch.device("cpu"))  # "1" is for CUDA devices
    monkeypatch.setenv(fused_layers.ENV, "0")
    assert not fused_layers.enabled(torch.device("cuda"))
    monkeypatch.delenv(fused_layers.ENV)
    assert fused_layers.enabled(torch.device("cuda")) and not fused_layers.enabled(torch.device("cpu"))  # default
    assert fused_layers.rotary_setting() == "1"  # on wherever the block is (`bash bench/gpu_perf.sh fused` times it off and on)
    monkeypatch.setenv(fused_layers.ROTARY_ENV, "on")
    with pytest.raises(ValueError, match="AHN_HARNESS_FUSED_ROTARY='on'; valid: 0, 1"):
        fused_layers.rotary_setting()


@pytest.mark.parametrize("name", ["swa", "ahn-gdn"])
def test_prefill_through_the_compiled_functions_equals_the_modules(monkeypatch, name):
    """Chunked prefill of 40 tokens through 3 sinks + 10 window, compiled by inductor (on the CPU here)."""
    calls = {"norm": 0, "mlp": 0}
    for kind in calls:
        original = getattr(fused_layers, f"_{kind}_forward")

        def counted(*args, kind=kind, original=original):
            calls[kind] += 1
            return original(*args)

        monkeypatch.setattr(fused_layers, f"_{kind}_forward", counted)
    model = tiny_model("qwen2", dtype=torch.float64)
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__.endswith("RMSNorm"):
                m.weight.uniform_(0.5, 1.5)  # not the initial ones, so a dropped weight shows here too
    ids = torch.randint(0, 300, (1, 40), generator=torch.Generator().manual_seed(3))
    method = make_method(name, sinks=3, window=10)
    with attach(model, method):
        ref = prefill(model, method, method.new_cache(model), ids, chunk_size=8)
        assert calls == {"norm": 0, "mlp": 0}  # off on the CPU by default
        monkeypatch.setenv(fused_layers.ENV, "force")
        monkeypatch.setenv(fused_layers.ROTARY_ENV, "1")  # the rotary embedding compiled too
        got = prefill(model, method, method.new_cache(model), ids, chunk_size=8)
    assert calls == {"norm": 5 * 5, "mlp": 5 * 2}  # 5 chunks through 2 layers (2 norms each) and the final norm
    assert (got - ref).abs().max() <= 2**-22 * ref.abs().max()
    assert not any("forward" in m.__dict__ for m in model.modules())


def test_rotary_runs_compiled_inside_the_block_and_as_it_was_after():
    """The model's own apply_rotary_pos_emb is swapped for its compiled self (inductor on the CPU, fp64: the same
    products and sums, fused, so ~1e-16 apart) only inside the block, once however deeply the blocks nest."""
    from transformers.models.qwen2 import modeling_qwen2

    model = tiny_model("qwen2", dtype=torch.float64)
    own = modeling_qwen2.apply_rotary_pos_emb
    assert fused_layers.rotary_modules(model) == [modeling_qwen2]
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(1, 4, 6, 8, generator=g, dtype=torch.float64), torch.randn(1, 2, 6, 8, generator=g,
                                                                                 dtype=torch.float64)
    cos, sin = torch.randn(1, 6, 8, generator=g, dtype=torch.float64), torch.randn(1, 6, 8, generator=g,
                                                                                  dtype=torch.float64)
    want = own(q, k, cos, sin)
    with fused_layers.fused_layers(model):
        assert modeling_qwen2.apply_rotary_pos_emb is own  # rotary only when asked (`maybe` asks by default)
    with fused_layers.fused_layers(model, rotary=True):
        swapped = modeling_qwen2.apply_rotary_pos_emb
        assert swapped is not own
        with fused_layers.fused_layers(model, rotary=True):
            assert modeling_qwen2.apply_rotary_pos_emb is swapped
        assert modeling_qwen2.apply_rotary_pos_emb is swapped
        got = swapped(q, k, cos, sin)
    assert modeling_qwen2.apply_rotary_pos_emb is own
    for a, b in zip(got, want, strict=True):
        assert (a - b).abs().max() <= 1e-12 * b.abs().max()
    with fused_layers.fused_layers(model, compiled=False, rotary=True):
        assert modeling_qwen2.apply_rotary_pos_emb is own  # the plain block changes no function


def test_a_function_inductor_cannot_compile_runs_as_it_is():
    def rotary(q, k):
        torch._dynamo.graph_break()  # not one graph: compile_shared's fullgraph refuses it
        return q * 2, k * 3

    call = fused_layers.compiled_or_own(rotary)
    q, k = torch.ones(2), torch.ones(3)
    with pytest.warns(UserWarning, match="runs uncompiled"):
        a, b = call(q, k)
    assert torch.equal(a, q * 2) and torch.equal(b, k * 3)
    assert rotary in fused_layers._UNCOMPILABLE
    assert torch.equal(call(q, k)[0], q * 2)  # from then on without trying again


@pytest.mark.gpu
def test_compiled_functions_on_the_gpu_in_bf16():
    """Qwen2.5-3B's widths in bf16 on CUDA. The compiled kernels keep the fp32 intermediates that eager rounds to
    bf16 between operations, so each element may differ by one bf16 rounding (relative 2**-8 at most, 2**-9 on
    average); the bound on the norm-relative error, 2**-7, leaves a factor of two over the worst case."""
    from transformers import Qwen2Config
    from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP, Qwen2RMSNorm

    cfg = Qwen2Config(hidden_size=2048, intermediate_size=11008, rms_norm_eps=1e-6)
    g = torch.Generator("cuda").manual_seed(0)
    x = torch.randn(1, 4096, 2048, device="cuda", generator=g).to(torch.bfloat16)
    with torch.device("cuda"), torch.no_grad():
        norm, mlp = Qwen2RMSNorm(2048, eps=1e-6).to(torch.bfloat16), Qwen2MLP(cfg).to(torch.bfloat16)
        norm.weight.uniform_(0.5, 1.5)
        for lin in (mlp.gate_proj, mlp.up_proj, mlp.down_proj):
            lin.weight.normal_(0, 0.02)
        model = nn.Sequential(norm, mlp)
        ref = mlp(norm(x)).float()
        with fused_layers.fused_layers(model) as n:
            assert n == 2
            got = mlp(norm(x)).float()
    assert ((got - ref).norm() / ref.norm()).item() <= 2**-7
