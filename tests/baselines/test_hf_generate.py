"""Stock `model.generate` inside `attach` runs through the memory method (baselines/hf_generate.py): on the
tiny world, with the passkey beyond the window, it equals the harness's engine token for token, and differs
from the same model's full-attention answer; what it cannot run through the method is refused by name."""

from __future__ import annotations

import pytest
import torch

from baselines import attach, engine
from harness.loading import loaded
from harness.presets import get_preset
from tasks import synthetic

EOS = 258  # the tiny world's <|im_end|>


def _passkey_ids(tokenizer) -> torch.Tensor:
    """A 1,024-token passkey prompt with the needle at 10% depth: ~900 tokens before the tiny presets'
    32 sinks + 480 window reach it."""
    sample = synthetic.load("passkey", [1024], 1, depths=[0.1])[0]
    ids = tokenizer(sample.prompt, return_tensors="pt").input_ids
    assert ids.shape[1] > 32 + 480 + 400
    return ids


def _stock(model, ids, **kw):
    out = model.generate(ids, max_new_tokens=8, do_sample=False, **kw)
    new = out[0, ids.shape[1]:].tolist()
    return new[:new.index(EOS)] if EOS in new else new  # the engine leaves the stop token out


@pytest.mark.parametrize("preset", ["tiny-swa", "tiny-ahn-gdn"])
def test_generate_inside_attach_equals_the_engine(preset):
    with loaded(get_preset(preset), device="cpu") as lo:
        passkey_ids = _passkey_ids(lo.tokenizer)
        ref = engine.generate(lo.model, lo.method, passkey_ids, 8, chunk_size=lo.preset.chunk_size)
        assert _stock(lo.model, passkey_ids) == ref.tokens[0]
        model, method = lo.model, lo.method
    full = _stock(model, passkey_ids)  # detached: the stock model, full attention
    if preset == "tiny-swa":  # the window has lost the needle: the method's answer is not full attention's
        assert full != ref.tokens[0]
    # attached again with a small prefill chunk: the hook prefills in chunks and still equals the engine
    with attach(model, method, chunk_size=200):
        assert _stock(model, passkey_ids) == ref.tokens[0]


def test_what_cannot_run_through_the_method_is_refused():
    from transformers import DynamicCache

    with loaded(get_preset("tiny-swa"), device="cpu") as lo:
        ids = _passkey_ids(lo.tokenizer)[:, :64]
        with pytest.raises(NotImplementedError, match="beam search"):
            lo.model.generate(ids, max_new_tokens=2, num_beams=2, do_sample=False)
        mask = torch.ones(2, 64, dtype=torch.long)
        mask[1, :3] = 0
        with pytest.raises(NotImplementedError, match="padded batch"):
            lo.model.generate(ids.repeat(2, 1), attention_mask=mask, max_new_tokens=2, do_sample=False)
        embeds = lo.model.get_input_embeddings()(ids)
        with pytest.raises(NotImplementedError, match="inputs_embeds cannot run through"):
            lo.model.generate(inputs_embeds=embeds, max_new_tokens=2, do_sample=False)
        filled = DynamicCache(config=lo.model.config)
        filled.update(torch.zeros(1, 2, 3, 64), torch.zeros(1, 2, 3, 64), 0)
        with pytest.raises(RuntimeError, match="already holds 3 tokens"):
            lo.model(input_ids=ids[:, :1], past_key_values=filled, use_cache=True)
