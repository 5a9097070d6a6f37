"""Run one kvpress press on the tiny random Qwen2 of `tests/tiny_models.py` and print what it kept, as JSON.

Its own process: `import kvpress` patches every attention function of transformers globally. kvpress 0.5.5 reads
the `cache_position` keyword that transformers 5 no longer passes to the attention modules, and the cache under
its old name `past_key_values`, so a forward pre-hook on each `self_attn` supplies both (`cache_position =
arange(past, past + q_len)`, `past` from the cache's `get_seq_length(layer_idx)`). Usage:
`python tests/baselines/kvpress_reference.py '[{"press": "snapkv", "budget": 12, "ids": [...], "next": 5}, ...]'`
prints one result per spec.
"""

from __future__ import annotations

import json
import sys

import torch


def _cache_position_hook(module, args, kwargs):
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    kwargs["past_key_values"] = cache  # kvpress's name for the cache keyword
    hidden = kwargs.get("hidden_states", args[0] if args else None)
    past = cache.get_seq_length(module.layer_idx) if cache is not None else 0
    kwargs["cache_position"] = torch.arange(past, past + hidden.shape[1], device=hidden.device)
    return args, kwargs


def main(spec: dict) -> dict:
    import kvpress
    from transformers import DynamicCache

    from tests.tiny_models import tiny_model

    # ObservedAttentionPress reads the eager attention weights
    model = tiny_model("qwen2", attn="eager", initializer_range=spec.get("initializer_range", 0.02))
    for layer in model.model.layers:
        layer.self_attn.register_forward_pre_hook(_cache_position_hook, with_kwargs=True)
    ids = torch.tensor([spec["ids"]])
    T, budget = ids.shape[1], spec["budget"]
    ratio = (T - budget - 0.5) / T  # kvpress keeps int(T * (1 - ratio)) = budget
    assert kvpress.utils.compute_n_kept(T, ratio) == budget
    press = {
        "snapkv": lambda: kvpress.SnapKVPress(compression_ratio=ratio, window_size=spec.get("window_size", 64),
                                              kernel_size=spec.get("kernel_size", 5)),
        "tova": lambda: kvpress.TOVAPress(compression_ratio=ratio),
        "knorm": lambda: kvpress.KnormPress(compression_ratio=ratio),
        "observed": lambda: kvpress.ObservedAttentionPress(compression_ratio=ratio),
    }[spec["press"]]()
    with torch.no_grad():
        full = DynamicCache()
        model(ids, cache=full, use_cache=True)
        cache = DynamicCache()
        with press(model):
            prefill_logits = model(ids, cache=cache, use_cache=True, output_attentions=True).logits[0, -1]
        # the next token keeps its true position (kvpress's pipeline passes it too): the cache holds `budget`
        decode_logits = model(torch.tensor([[spec["next"]]]), cache=cache, use_cache=True,
                              position_ids=torch.tensor([[T]])).logits[0, -1]
    kept = []
    for layer in range(model.config.num_hidden_layers):
        all_keys, kept_keys = full.layers[layer].keys[0], cache.layers[layer].keys[0, :, :budget]
        same = (kept_keys[:, :, None] == all_keys[:, None]).all(-1)  # [Hkv, budget, T]
        assert bool((same.sum(-1) == 1).all()), "a kept key is not exactly one of the prompt's"
        kept.append(same.int().argmax(-1).sort(-1).values.tolist())
    return {"kept": kept, "prefill_logits": prefill_logits.tolist(), "decode_logits": decode_logits.tolist()}


if __name__ == "__main__":
    print(json.dumps([main(spec) for spec in json.loads(sys.argv[1])]))
