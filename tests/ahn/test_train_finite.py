"""Finite or failed: a non-finite setting is refused before training, a non-finite loss stops it without a
checkpoint or a summary marked complete."""

from __future__ import annotations

import pytest
import torch

from ahn.train.config import ConfigError, load_config
from ahn.train.data import ListSource
from ahn.train.loop import NonFiniteError, train
from tests.tiny_models import tiny_model


def _cfg(tmp_path, *extra: str):
    base = ["base=tiny", f"output_dir={tmp_path / 'out'}", "window.mode=fixed", "window.sinks=2",
            "window.window=14", "steps=3", "grad_accum=1", "micro_batch_size=2", "optim.lr=1e-2",
            "optim.warmup_ratio=0", "save_every=1", "save_dtype=float32", "gradient_checkpointing=false"]
    return load_config(None, base + list(extra))


@pytest.mark.parametrize("override", ["optim.lr=Infinity", "optim.weight_decay=NaN", "optim.eps=-Infinity",
                                      "optim.grad_clip=NaN", "optim.betas=[0.9, NaN]",
                                      "cell_init={\"gdn\": {\"dt_max\": Infinity}}"])
def test_non_finite_settings_are_refused(tmp_path, override: str) -> None:
    with pytest.raises(ConfigError, match="finite number"):
        _cfg(tmp_path, override)


def test_a_config_built_in_code_is_checked_too(tmp_path) -> None:
    from ahn.train.config import validate

    cfg = _cfg(tmp_path)
    cfg.optim.lr = float("inf")
    with pytest.raises(ConfigError, match="optim.lr must be a finite number"):
        validate(cfg)


def test_non_finite_loss_stops_without_a_checkpoint(tmp_path) -> None:
    model = tiny_model()
    with torch.no_grad():
        model.get_input_embeddings().weight[5].fill_(float("nan"))  # every sequence below holds token 5
    rows = [[5] + list(range(10, 105)) for _ in range(4)]
    source = ListSource([{"input_ids": r, "labels": r} for r in rows])
    with pytest.raises(NonFiniteError, match="step 1: loss nan is not finite"):
        train(_cfg(tmp_path), model=model, source=source, echo=lambda _m: None)
    out = tmp_path / "out"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) if out.exists() else []
    assert not [p for p in written if p.endswith(".safetensors") or p.endswith("train_summary.json")], written
