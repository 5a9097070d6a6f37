"""AHN checkpoints carry their base family in ``_layer_implementation``: Qwen3 ones load onto Qwen3 bases only.

The Qwen3 checkpoints are written by hand as the official code writes them (its Qwen3 AHN config class: the
Qwen3 config plus ``_layer_implementation = "Qwen3MemDecoderLayer"`` and the AHN keys), on a tiny random
Qwen3 base built offline whose ``head_dim`` is not ``hidden_size / num_attention_heads``.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

import ahn.method  # noqa: F401  (registers the AHN methods)
from ahn.checkpoint import (
    LAYER_IMPLEMENTATIONS,
    AHNCheckpointError,
    layer_implementation_for,
    load_ahn_state_dict,
    read_ahn_config,
    save_ahn_checkpoint,
)
from baselines import attach, make_method
from baselines.engine import prefill
from baselines.interface import SUPPORTED_MODEL_TYPES

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, LAYERS = 64, 4, 2, 32, 2  # Qwen3: head_dim 32 != 64 / 4

# The official GDN parameter names and shapes, written out independently of ahn.cells.
GDN = {"b_proj.weight": (HEADS, HIDDEN), "a_proj.weight": (HEADS, HIDDEN), "g_proj.weight": (HEADS, HIDDEN),
       "A_log": (HEADS,), "D": (HEADS,), "dt_bias": (HEADS,), "o_norm.weight": (HEAD_DIM,),
       "o_proj.weight": (HEADS, HEAD_DIM, HEAD_DIM)}
# The AHN keys the official config class adds (its defaults, as a trained checkpoint's config carries them).
OFFICIAL_AHN_KEYS = {"_ahn_implementation": "GatedDeltaNet", "fa_layer_ids": "", "use_ahn_router": False,
                     "use_q_proj": False, "sliding_window_type": "fixed", "ahn_position": "prefix",
                     "use_normalized_l2": True, "use_layerwise_decay": True, "loss_type": ["kl"],
                     "num_attn_sinks": 128, "sliding_window": 256}


def qwen3_config() -> Qwen3Config:
    return Qwen3Config(vocab_size=128, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
                       num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
                       max_position_embeddings=1024, tie_word_embeddings=False)


def qwen2_config() -> Qwen2Config:
    return Qwen2Config(vocab_size=128, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
                       num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=1024,
                       tie_word_embeddings=False)


def base(config, seed: int = 0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()


def write_checkpoint(folder, config, layer_implementation: str, shapes: dict = GDN) -> dict[str, torch.Tensor]:
    """An AHN-only checkpoint as the official code saves it: bf16 AHN tensors + the full config."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(3)
    tensors = {f"model.layers.{i}.ahn.fn.{name}": (0.1 * torch.randn(shape, generator=g)).to(torch.bfloat16)
               for i in range(config.num_hidden_layers) for name, shape in shapes.items()}
    save_file(tensors, str(folder / "model.safetensors"))
    cfg = config.to_dict() | OFFICIAL_AHN_KEYS | {"_layer_implementation": layer_implementation}
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    return tensors


def test_every_supported_family_has_a_layer_implementation():
    assert set(LAYER_IMPLEMENTATIONS) == set(SUPPORTED_MODEL_TYPES)
    assert LAYER_IMPLEMENTATIONS["qwen2"] == "Qwen2MemDecoderLayer"  # the releases
    assert LAYER_IMPLEMENTATIONS["qwen3"] == "Qwen3MemDecoderLayer"  # the official Qwen3 AHN classes


def test_qwen3_checkpoint_loads_strictly_onto_a_qwen3_base(tmp_path):
    tensors = write_checkpoint(tmp_path / "ck", qwen3_config(), "Qwen3MemDecoderLayer")
    cfg = read_ahn_config(tmp_path / "ck")
    assert (cfg.model_type, cfg.layer_implementation, cfg.cell_kind) == ("qwen3", "Qwen3MemDecoderLayer", "gdn")
    assert cfg.head_dim == HEAD_DIM and cfg.num_heads == HEADS
    model = base(qwen3_config())
    method = make_method("ahn-gdn", sinks=4, window=24)
    ids = torch.randint(0, 128, (1, 90), generator=torch.Generator().manual_seed(1))
    with attach(model, method):
        report = load_ahn_state_dict(tmp_path / "ck", model, strict=True)
        assert sorted(report.loaded) == sorted(tensors) and not report.missing and not report.unexpected
        state = {k: v for k, v in model.state_dict().items() if ".ahn." in k}
        for key, value in tensors.items():
            assert torch.equal(state[key], value.float()), key
        with_memory = prefill(model, method, method.new_cache(model), ids, chunk_size=32)
    swa = make_method("swa", sinks=4, window=24)
    with attach(model, swa):
        without = prefill(model, swa, swa.new_cache(model), ids, chunk_size=32)
    assert torch.isfinite(with_memory).all()
    assert (with_memory - without).norm() > 1e-3 * without.norm()  # the loaded memory acts on the Qwen3 base


def test_qwen3_checkpoint_onto_a_qwen2_base_is_refused_naming_both(tmp_path):
    write_checkpoint(tmp_path / "ck", qwen3_config(), "Qwen3MemDecoderLayer")
    model = base(qwen2_config())
    with attach(model, make_method("ahn-gdn", sinks=4, window=24)):
        with pytest.raises(AHNCheckpointError) as err:
            load_ahn_state_dict(tmp_path / "ck", model, strict=True)
    msg = str(err.value)
    assert "'Qwen3MemDecoderLayer'" in msg and "model_type='qwen2'" in msg and "'Qwen2MemDecoderLayer'" in msg


def test_qwen2_checkpoint_onto_a_qwen3_base_is_refused_naming_both(tmp_path):
    # same tensor shapes on both bases (head_dim = hidden / heads), so only the family check can refuse it
    q3 = Qwen3Config(**(qwen3_config().to_dict() | {"head_dim": HIDDEN // HEADS}))
    q2_shapes = GDN | {"o_norm.weight": (HIDDEN // HEADS,), "o_proj.weight": (HEADS, HIDDEN // HEADS, HIDDEN // HEADS)}
    write_checkpoint(tmp_path / "ck", qwen2_config(), "Qwen2MemDecoderLayer", q2_shapes)
    model = base(q3)
    with attach(model, make_method("ahn-gdn", sinks=4, window=24)):
        with pytest.raises(AHNCheckpointError) as err:
            load_ahn_state_dict(tmp_path / "ck", model, strict=True)
    msg = str(err.value)
    assert "'Qwen2MemDecoderLayer'" in msg and "model_type='qwen3'" in msg and "'Qwen3MemDecoderLayer'" in msg


def test_config_whose_layer_and_model_type_disagree_is_refused(tmp_path):
    write_checkpoint(tmp_path / "ck", qwen2_config(), "Qwen3MemDecoderLayer")
    with pytest.raises(AHNCheckpointError, match="'Qwen3MemDecoderLayer' is a qwen3 layer but model_type='qwen2'"):
        read_ahn_config(tmp_path / "ck")


def test_unknown_layer_implementation_lists_the_valid_ones(tmp_path):
    write_checkpoint(tmp_path / "ck", qwen3_config(), "Qwen3DecoderLayer")
    with pytest.raises(AHNCheckpointError, match="'Qwen3DecoderLayer'.*'Qwen2MemDecoderLayer', 'Qwen3MemDecoderLayer'"):
        read_ahn_config(tmp_path / "ck")


@pytest.mark.parametrize(("config", "expected"), [(qwen3_config, "Qwen3MemDecoderLayer"),
                                                  (qwen2_config, "Qwen2MemDecoderLayer")])
def test_saved_checkpoint_names_the_base_family_and_loads_back(tmp_path, config, expected):
    model = base(config())
    method = make_method("ahn-gdn", sinks=4, window=24)
    with attach(model, method):
        with torch.no_grad():
            for block in method.blocks:
                block.fn.o_proj.weight.normal_(0, 0.05)
        save_ahn_checkpoint(model, tmp_path / "ck", "gdn", model.config.to_dict(), dtype=None)
        saved = {k: v.clone() for k, v in model.state_dict().items() if ".ahn." in k}
    written = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert written["_layer_implementation"] == expected and written["model_type"] == config().model_type
    again = make_method("ahn-gdn", sinks=4, window=24)
    with attach(model, again):
        load_ahn_state_dict(tmp_path / "ck", model, strict=True)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())


def test_family_without_a_layer_implementation_and_mismatched_base_config_are_refused(tmp_path):
    with pytest.raises(AHNCheckpointError, match="model_type='gpt2'; valid model types: qwen2, qwen3, llama, mistral"):
        layer_implementation_for("gpt2")
    model = base(LlamaConfig(vocab_size=128, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
                             num_attention_heads=HEADS, num_key_value_heads=KV_HEADS))
    method = make_method("ahn-gdn", sinks=4, window=24)
    with attach(model, method):
        with pytest.raises(AHNCheckpointError, match="base_config has model_type='qwen2' but the model is 'llama'"):
            save_ahn_checkpoint(model, tmp_path / "ck", "gdn", qwen2_config().to_dict())
        out = save_ahn_checkpoint(model, tmp_path / "llama", "gdn", model.config.to_dict())
    assert json.loads((out / "config.json").read_text())["_layer_implementation"] == "LlamaMemDecoderLayer"
