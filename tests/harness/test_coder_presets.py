"""The AHN presets of the coder base: one per cell, at the coder window, reading the committed checkpoints."""

from __future__ import annotations

from pathlib import Path

from harness.presets import PRESETS, get_preset

REPO = Path(__file__).resolve().parents[2]


def test_one_preset_per_cell_at_the_coder_window():
    for cell in ("gdn", "dn", "mamba2"):
        p = get_preset(f"ahn-{cell}-coder-0.5b")
        assert (p.method, p.sinks, p.window) == (f"ahn-{cell}", 128, 3968)
        assert Path(p.ahn_checkpoint) == REPO / "leaderboards" / "coder-0.5b" / cell
        full = PRESETS.get("qwen2.5-coder-0.5b")
        assert p.model == (full.model if full else "Qwen/Qwen2.5-Coder-0.5B-Instruct")
