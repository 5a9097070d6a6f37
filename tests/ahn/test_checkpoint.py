"""Checkpoint I/O in the released format: official names load strictly, every defect is named, round trips exact."""

from __future__ import annotations

import json
import re
import time
from dataclasses import fields

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM

from ahn.cells import make_cell
from ahn.checkpoint import (
    BASE_MODELS,
    RELEASED_CHECKPOINTS,
    RELEASED_REPO_IDS,
    AHNCheckpointError,
    load_ahn_state_dict,
    read_ahn_config,
    save_ahn_checkpoint,
)

HIDDEN, HEADS, KV_HEADS, LAYERS = 32, 4, 2, 2
HEAD_DIM = HIDDEN // HEADS


def base_config(**overrides) -> Qwen2Config:
    kw = dict(vocab_size=64, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=LAYERS,
              num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=256)
    return Qwen2Config(**(kw | overrides))


def ahn_model(kind: str, seed: int = 0, dtype=torch.float32, randomize: bool = True) -> Qwen2ForCausalLM:
    """A tiny random Qwen2 with a cell attached as `model.layers[i].ahn.fn` (the AHN method does the same)."""
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(base_config())
    for layer in model.model.layers:
        holder = nn.Module()
        holder.fn = make_cell(kind, HIDDEN, HEADS, HEAD_DIM)
        layer.ahn = holder
    if randomize:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".ahn." in name:
                    p.copy_(torch.randn(p.shape))
    return model.to(dtype)


def ahn_params(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if ".ahn." in k}


# The official parameter names of docs/AHN.md §5, written out independently of ahn.cells.
OFFICIAL = {
    "gdn": {"b_proj.weight": (HEADS, HIDDEN), "a_proj.weight": (HEADS, HIDDEN), "g_proj.weight": (HEADS, HIDDEN),
            "A_log": (HEADS,), "D": (HEADS,), "dt_bias": (HEADS,), "o_norm.weight": (HEAD_DIM,),
            "o_proj.weight": (HEADS, HEAD_DIM, HEAD_DIM)},
    "dn": {"b_proj.weight": (HEADS, HIDDEN), "g_proj.weight": (HEADS, HIDDEN), "o_norm.weight": (HEAD_DIM,),
           "o_proj.weight": (HEADS, HEAD_DIM, HEAD_DIM)},
    "mamba2": {"dt_bias": (HEADS,), "A_log": (HEADS,), "norm.weight": (HEADS * HEAD_DIM,),
               "dt_proj.weight": (HEADS, HIDDEN), "dt_proj.bias": (HEADS,), "g_proj.weight": (HEADS, HIDDEN),
               "g_proj.bias": (HEADS,), "o_proj.weight": (HEADS, HEAD_DIM, HEAD_DIM)},
}
IMPL = {"gdn": "GatedDeltaNet", "dn": "DeltaNet", "mamba2": "Mamba2"}


def write_official(folder, kind: str, tensors: dict | None = None, config_overrides: dict | None = None,
                   dtype=torch.bfloat16) -> dict[str, torch.Tensor]:
    """A checkpoint as the releases lay it out, built by hand: one safetensors of AHN tensors + config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    if tensors is None:
        g = torch.Generator().manual_seed(7)
        tensors = {f"model.layers.{i}.ahn.fn.{name}": torch.randn(shape, generator=g).to(dtype)
                   for i in range(LAYERS) for name, shape in OFFICIAL[kind].items()}
    save_file(tensors, str(folder / "model.safetensors"))
    cfg = base_config().to_dict() | {"_layer_implementation": "Qwen2MemDecoderLayer", "_ahn_implementation": IMPL[kind],
                                     "fa_layer_ids": "", "use_ahn_router": False, "use_q_proj": False,
                                     "sliding_window": 256, "dy_sliding_window": 1024, "dy_num_attn_sinks": 64}
    cfg |= config_overrides or {}
    (folder / "config.json").write_text(json.dumps(cfg))
    return tensors


@pytest.mark.parametrize("kind", ["gdn", "dn", "mamba2"])
def test_official_names_load_strictly(tmp_path, kind):
    tensors = write_official(tmp_path / "ckpt", kind)
    model = ahn_model(kind)
    report = load_ahn_state_dict(tmp_path / "ckpt", model)
    assert len(report.loaded) == LAYERS * len(OFFICIAL[kind]) and not report.missing and not report.unexpected
    assert report.config.cell_kind == kind
    got = ahn_params(model)
    for key, t in tensors.items():
        assert torch.equal(got[key], t.float()), key  # bf16 in the file, cast to the fp32 cell exactly


def _load_error(tmp_path, kind, mutate) -> str:
    tensors = write_official(tmp_path / "good", kind)
    mutate(tensors)
    write_official(tmp_path / "bad", kind, tensors)
    with pytest.raises(AHNCheckpointError) as e:
        load_ahn_state_dict(tmp_path / "bad", ahn_model(kind))
    return str(e.value)


def test_renamed_key_fails_naming_both_names(tmp_path):
    def rename(t):
        t["model.layers.1.ahn.fn.beta_proj.weight"] = t.pop("model.layers.1.ahn.fn.b_proj.weight")
    msg = _load_error(tmp_path, "gdn", rename)
    assert "missing" in msg and "model.layers.1.ahn.fn.b_proj.weight" in msg
    assert "unexpected" in msg and "model.layers.1.ahn.fn.beta_proj.weight" in msg


def test_missing_key_fails_naming_it(tmp_path):
    msg = _load_error(tmp_path, "dn", lambda t: t.pop("model.layers.0.ahn.fn.o_norm.weight"))
    assert re.search(r"missing AHN keys \(1\): model\.layers\.0\.ahn\.fn\.o_norm\.weight", msg)


def test_extra_key_fails_naming_it(tmp_path):
    def extra(t):
        t["model.layers.0.ahn.fn.q_proj.weight"] = torch.zeros(HEADS, HEAD_DIM, HEAD_DIM)
        t["model.layers.0.ahn_router.alpha"] = torch.zeros(HEADS)
    msg = _load_error(tmp_path, "mamba2", extra)
    assert "unexpected keys in the checkpoint (2)" in msg
    assert "model.layers.0.ahn.fn.q_proj.weight" in msg and "model.layers.0.ahn_router.alpha" in msg


def test_extra_layer_fails(tmp_path):
    def extra_layer(t):
        t["model.layers.2.ahn.fn.D"] = torch.ones(HEADS)
    assert "model.layers.2.ahn.fn.D" in _load_error(tmp_path, "gdn", extra_layer)


def test_misshaped_key_fails_with_both_shapes(tmp_path):
    def reshape(t):
        t["model.layers.1.ahn.fn.g_proj.weight"] = torch.zeros(HIDDEN, HEADS)  # transposed Linear
    msg = _load_error(tmp_path, "gdn", reshape)
    assert f"model.layers.1.ahn.fn.g_proj.weight: [{HEADS}, {HIDDEN}] vs [{HIDDEN}, {HEADS}]" in msg


def test_nothing_is_loaded_when_loading_fails(tmp_path):
    tensors = write_official(tmp_path / "x", "dn")
    tensors.pop("model.layers.1.ahn.fn.g_proj.weight")
    write_official(tmp_path / "x", "dn", tensors)
    model = ahn_model("dn")
    before = {k: v.clone() for k, v in ahn_params(model).items()}
    with pytest.raises(AHNCheckpointError):
        load_ahn_state_dict(tmp_path / "x", model)
    assert all(torch.equal(before[k], v) for k, v in ahn_params(model).items())


def test_non_strict_reports_missing(tmp_path):
    tensors = write_official(tmp_path / "x", "dn")
    tensors.pop("model.layers.1.ahn.fn.g_proj.weight")
    write_official(tmp_path / "x", "dn", tensors)
    report = load_ahn_state_dict(tmp_path / "x", ahn_model("dn"), strict=False)
    assert report.missing == ("model.layers.1.ahn.fn.g_proj.weight",)


def test_wrong_cell_kind_fails(tmp_path):
    write_official(tmp_path / "g", "gdn")
    with pytest.raises(AHNCheckpointError, match="AHN-GatedDeltaNet.*'mamba2'"):
        load_ahn_state_dict(tmp_path / "g", ahn_model("mamba2"))


def test_model_without_ahn_fails(tmp_path):
    write_official(tmp_path / "g", "gdn")
    torch.manual_seed(0)
    with pytest.raises(AHNCheckpointError, match="no AHN parameters"):
        load_ahn_state_dict(tmp_path / "g", Qwen2ForCausalLM(base_config()))


@pytest.mark.parametrize("kind", ["gdn", "dn", "mamba2"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_save_load_round_trip_is_bit_exact(tmp_path, kind, dtype):
    src = ahn_model(kind, seed=1, dtype=dtype)
    out = save_ahn_checkpoint(src, tmp_path / "ck", kind, src.config.to_dict(), dtype=dtype)
    stored = load_file(str(out / "model.safetensors"))
    assert all(".ahn.fn." in k for k in stored)  # only AHN tensors, under the released names
    assert len(stored) == LAYERS * len(OFFICIAL[kind])
    assert {t.dtype for t in stored.values()} == {dtype}
    dst = ahn_model(kind, seed=2, dtype=dtype)
    load_ahn_state_dict(out, dst)
    a, b = ahn_params(src), ahn_params(dst)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_default_save_is_bf16_and_loads_into_fp32(tmp_path):
    src = ahn_model("gdn", seed=3)
    out = save_ahn_checkpoint(src, tmp_path / "ck", "gdn", src.config)
    assert {t.dtype for t in load_file(str(out / "model.safetensors")).values()} == {torch.bfloat16}
    dst = ahn_model("gdn", seed=4)
    load_ahn_state_dict(out, dst)
    a, b = ahn_params(src), ahn_params(dst)
    assert all(torch.equal(a[k].bfloat16().float(), b[k]) for k in a)


def test_saved_config_carries_ahn_keys(tmp_path):
    src = ahn_model("mamba2")
    out = save_ahn_checkpoint(src, tmp_path / "ck", "mamba2", src.config.to_dict())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["_layer_implementation"] == "Qwen2MemDecoderLayer" and cfg["_ahn_implementation"] == "Mamba2"
    assert cfg["fa_layer_ids"] == "" and cfg["use_ahn_router"] is False and cfg["use_q_proj"] is False
    assert cfg["hidden_size"] == HIDDEN and cfg["num_hidden_layers"] == LAYERS
    parsed = read_ahn_config(out)
    assert (parsed.cell_kind, parsed.num_layers, parsed.num_heads, parsed.num_kv_heads, parsed.head_dim) == \
        ("mamba2", LAYERS, HEADS, KV_HEADS, HEAD_DIM)


def test_save_rejects_wrong_kind_and_bare_models(tmp_path):
    with pytest.raises(AHNCheckpointError, match="cell_kind='dn'"):
        save_ahn_checkpoint(ahn_model("gdn"), tmp_path / "a", "dn", base_config().to_dict())
    with pytest.raises(AHNCheckpointError, match="no AHN tensors"):
        save_ahn_checkpoint(Qwen2ForCausalLM(base_config()), tmp_path / "b", "dn", base_config().to_dict())
    with pytest.raises(ValueError, match="unknown AHN cell kind"):
        save_ahn_checkpoint(ahn_model("gdn"), tmp_path / "c", "gla", base_config().to_dict())


def test_inner_base_model_uses_the_same_keys(tmp_path):
    """Saving/loading through `model.model` (a Qwen2Model) still uses `model.layers.{i}...` names."""
    src = ahn_model("dn", seed=5)
    out = save_ahn_checkpoint(src.model, tmp_path / "ck", "dn", src.config.to_dict(), dtype=torch.float32)
    assert all(k.startswith("model.layers.") for k in load_file(str(out / "model.safetensors")))
    dst = ahn_model("dn", seed=6)
    load_ahn_state_dict(out, dst.model)
    assert all(torch.equal(ahn_params(src)[k], ahn_params(dst)[k]) for k in ahn_params(src))


def test_sliding_window_in_config_never_leaks(tmp_path):
    write_official(tmp_path / "c", "gdn", config_overrides={"sliding_window": 256, "num_attn_sinks": 4,
                                                             "use_sliding_window": True, "max_window_layers": 0})
    cfg = read_ahn_config(tmp_path / "c")
    trusted = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in ("raw", "ignored")}
    assert not any("window" in name or "sink" in name for name in trusted)
    assert 256 not in trusted.values()
    assert cfg.ignored["sliding_window"] == 256  # kept for provenance only
    base = cfg.base_config_dict()
    assert base["use_sliding_window"] is False and base["sliding_window"] is None
    assert not {"_layer_implementation", "_ahn_implementation", "num_attn_sinks", "dy_sliding_window",
                "dy_num_attn_sinks", "max_window_layers"} & set(base)
    hf = Qwen2Config(**base)
    assert hf.sliding_window is None and set(hf.layer_types) == {"full_attention"}


def test_config_must_be_an_ahn_config(tmp_path):
    write_official(tmp_path / "c", "gdn", config_overrides={"_layer_implementation": "Qwen2DecoderLayer"})
    with pytest.raises(AHNCheckpointError, match="_layer_implementation='Qwen2DecoderLayer'"):
        read_ahn_config(tmp_path / "c")
    write_official(tmp_path / "d", "gdn", config_overrides={"_ahn_implementation": "RWKV7"})
    with pytest.raises(AHNCheckpointError, match="RWKV7"):
        read_ahn_config(tmp_path / "d")
    write_official(tmp_path / "e", "gdn", config_overrides={"use_q_proj": True})
    with pytest.raises(AHNCheckpointError, match="use_q_proj"):
        read_ahn_config(tmp_path / "e")


def test_offline_hub_id_fails_at_once_with_a_clear_message():
    repo = "nobody-ahn-test/AHN-GDN-not-cached"
    t0 = time.monotonic()
    with pytest.raises(AHNCheckpointError) as e:
        load_ahn_state_dict(repo, ahn_model("gdn"))
    assert time.monotonic() - t0 < 5
    msg = str(e.value)
    assert repo in msg and "offline" in msg and "local folder" in msg
    with pytest.raises(AHNCheckpointError, match="neither an existing local folder nor a Hub repo id"):
        read_ahn_config("/definitely/not/here/ckpt")


def test_released_repo_ids():
    assert len(RELEASED_REPO_IDS) == 9 and len(set(RELEASED_REPO_IDS)) == 9
    assert RELEASED_CHECKPOINTS[("gdn", "3b")] == "ByteDance-Seed/AHN-GDN-for-Qwen-2.5-Instruct-3B"
    assert RELEASED_CHECKPOINTS[("mamba2", "14b")] == "ByteDance-Seed/AHN-Mamba2-for-Qwen-2.5-Instruct-14B"
    assert RELEASED_CHECKPOINTS[("dn", "7b")] == "ByteDance-Seed/AHN-DN-for-Qwen-2.5-Instruct-7B"
    assert BASE_MODELS["7b"] == "Qwen/Qwen2.5-7B-Instruct"
