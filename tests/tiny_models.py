"""Tiny random-weight causal LMs of the supported families, built offline for CPU tests."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

from baselines.precision import cast_keeping_rope

FAMILIES = ("qwen2", "qwen3", "llama")


def tiny_config(family: str = "qwen2", layers: int = 2, vocab: int = 300, **overrides):
    common = dict(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        rope_theta=10000.0, tie_word_embeddings=False,
    )
    common.update(overrides)
    if family == "qwen2":
        return Qwen2Config(**common)
    if family == "qwen3":
        return Qwen3Config(head_dim=16, **common)
    if family == "llama":
        return LlamaConfig(**common)
    raise ValueError(family)


def tiny_model(family: str = "qwen2", seed: int = 0, dtype=torch.float32, attn: str = "sdpa", **overrides):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides), attn_implementation=attn)
    return cast_keeping_rope(model, dtype).eval()  # fp32-initialised weights, RoPE frequencies kept fp32


def randomize_ahn(method, seed: int = 1, scale: float = 0.05) -> None:
    """Give the AHN cells non-zero output maps so memory actually changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.blocks.parameters():
            if p.ndim == 3:  # o_proj [H, dh, dh]
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def save_tiny_model_folder(path):
    """A random tiny Qwen2 with the byte tokenizer (EOS 258), saved like any local model folder."""
    from tasks.byte_tokenizer import save_byte_tokenizer

    model = tiny_model("qwen2", vocab=259)
    model.generation_config.eos_token_id = 258
    model.save_pretrained(path)
    save_byte_tokenizer(path)
    return path
