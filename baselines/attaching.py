"""Attaching a memory method to an unmodified `transformers` model: the registered attention function, a
pre-hook per attention module that hands the method the layer's normed input, and the model's attention
implementation switched to it, and hooks that make stock `model.generate` keep the method's cache
(`baselines.hf_generate`); on exit the model is exactly as before. Its own module so that the interface
(`baselines.interface`) and the attention function (`baselines.attention`) depend on each other in one
direction only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from baselines.attention import register_attention
from baselines.hf_generate import GenerateHooks
from baselines.interface import (
    ATTENTION_NAME,
    METHOD_OF_MODULE,
    MemoryMethod,
    capture_layer_input,
    decoder_layers,
)
from baselines.prefill_chunk import DEFAULT_CHUNK


@contextlib.contextmanager
def attach(model: nn.Module, method: MemoryMethod, chunk_size: int = DEFAULT_CHUNK) -> Iterator[MemoryMethod]:
    """Install `method` on `model`; on exit the model is exactly as before (modules, hooks, attention).
    `chunk_size` is the prefill chunk of stock `model.generate` inside (the harness's engine takes its own)."""
    layers = decoder_layers(model)
    register_attention()
    previous = model.config._attn_implementation
    handles = []
    method.install(model)
    try:
        for layer in layers:
            attn = layer.self_attn
            if attn in METHOD_OF_MODULE:
                raise RuntimeError("a memory method is already attached to this model; detach it first")
            METHOD_OF_MODULE[attn] = method
            handles.append(attn.register_forward_pre_hook(capture_layer_input, with_kwargs=True))
        _set_attn_implementation(model, ATTENTION_NAME)
        handles.append(GenerateHooks(model, method, chunk_size))  # stock model.generate runs through the method
        yield method
    finally:
        for h in handles:
            h.remove()
        for layer in layers:
            METHOD_OF_MODULE.pop(layer.self_attn, None)
        _set_attn_implementation(model, previous)
        method.uninstall(model)
        method.forget_inputs()


def _set_attn_implementation(model: nn.Module, name: str) -> None:
    try:
        model.set_attn_implementation(name)
    except (ValueError, AttributeError, TypeError):
        model.config._attn_implementation = name
