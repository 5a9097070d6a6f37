"""Where the tiny presets' weights come from.

The trained tiny world lives in `leaderboards/tiny/` (made by `studies/train_tiny_world.py` on a GPU). Until it
exists, the tiny presets run on *untrained* seed models built here deterministically: the same architecture and
byte tokenizer, random base weights (seed 0) and AHN cells at their initialisation (zero output maps, so AHN
equals sinks + window). That run is a real job — every cost column (FLOPs, cache bytes, times) is measured —
but its scores carry no information, and it says so loudly.
"""

from __future__ import annotations

import logging
from pathlib import Path

from baselines.registry import get_spec
from harness.presets import PRESETS, REPO_ROOT, TINY_DEFAULT, TINY_DIR, Preset

log = logging.getLogger(__name__)
UNTRAINED_DIR = REPO_ROOT / "runs" / "tiny-untrained"


def trained_world_present() -> bool:
    return (TINY_DIR / "base" / "config.json").exists()


def build_untrained_world(out: Path = UNTRAINED_DIR) -> Path:
    """Seeded random tiny base + the initial checkpoint of every trained tiny preset's method, each saved by
    its method (AHN: the released format) (idempotent)."""
    if (out / "done").exists():
        return out
    import torch

    from ahn.train.tiny_base import build_model, load_tiny_config, save_base
    from baselines import attach
    from harness.loading import build_method

    cfg = load_tiny_config(str(REPO_ROOT / "ahn" / "train" / "configs" / "tiny_base.json"), [])
    model = build_model(cfg)
    save_base(model, out / "base")
    model = model.to(torch.float32)
    for preset in (PRESETS[name] for name in TINY_DEFAULT):
        if not get_spec(preset.method).needs_checkpoint:
            continue
        torch.manual_seed(cfg.seed)
        method = build_method(preset)
        with attach(model, method):
            method.save_checkpoint(model, str(out / preset.method))
    (out / "done").write_text("untrained seed models of the tiny presets; see harness/tiny_seed.py\n")
    return out


def resolve_tiny(preset: Preset) -> Preset:
    """A tiny preset pointing at the trained world, or at the untrained seed models (with a warning)."""
    if preset.name not in TINY_DEFAULT or preset.model != str(TINY_DIR / "base") or trained_world_present():
        return preset
    root = build_untrained_world()
    log.warning("warning: %s has no trained tiny models yet; %s runs on UNTRAINED seed models from %s (costs are "
                "real, scores are not informative)", TINY_DIR, preset.name, root)
    ckpt = str(root / preset.name.removeprefix("tiny-")) if preset.ahn_checkpoint else None
    return preset.with_overrides(model=str(root / "base"), ahn_checkpoint=ckpt,
                                 description="UNTRAINED seed model: " + preset.description)
