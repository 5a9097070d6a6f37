"""Finite or failed: a sample whose logits are NaN or inf is recorded as failed with the reason, never scored."""

from __future__ import annotations

from pathlib import Path

import torch

from harness.cli import main
from harness.store import load_run
from tests.tiny_models import tiny_model


def test_nan_weights_fail_every_sample_with_the_reason(tmp_path: Path, capsys) -> None:
    from tasks.byte_tokenizer import save_byte_tokenizer

    model = tiny_model("qwen2", vocab=259)
    model.generation_config.eos_token_id = 258
    with torch.no_grad():
        model.model.norm.weight[0] = float("nan")  # the final norm: every position's logits turn NaN
    model.save_pretrained(tmp_path / "model")
    save_byte_tokenizer(tmp_path / "model")
    out = tmp_path / "run"
    code = main(["run", "--model", str(tmp_path / "model"), "--tasks", "synthetic:passkey@512", "--limit", "2",
                 "--output", str(out), "--no-progress", "--max-new-tokens", "4"])
    assert code == 0, capsys.readouterr().err
    records = load_run(out).records
    assert len(records) == 2
    for rec in records:
        assert rec["status"] == "failed" and rec["score"] is None and rec["prediction"] is None
        assert "non-finite logits" in rec["error"]


def test_batched_engine_flags_the_row(tmp_path: Path) -> None:
    """generate_many (the static decoder's path) flags the row whose prefill logits are not finite."""
    from baselines import attach, make_method
    from baselines.engine import generate, generate_many

    model = tiny_model("qwen2", vocab=259)
    method = make_method("swa", sinks=4, window=64)
    ids = torch.randint(0, 250, (1, 40), generator=torch.Generator().manual_seed(0))
    with attach(model, method):
        ok = generate(model, method, ids, max_new_tokens=2)
        assert ok.nonfinite_logits == [False]
        with torch.no_grad():
            model.model.norm.weight[0] = float("nan")
        bad = generate(model, method, ids, max_new_tokens=2)
        assert bad.nonfinite_logits == [True]
        assert method.decode_layout(2) is not None  # swa has the static decoder's layout
        rows = generate_many(model, method, [ids, ids], [2, 2], batch=2)
        assert [r.nonfinite_logits for r in rows] == [[True], [True]]
