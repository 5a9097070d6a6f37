"""A trained memory method added the way docs/ADDING_A_METHOD.md says: one file, one registration line.

Compressive pooling whose pooling is learned: each group of `ratio` evicted tokens becomes one slot, the
softmax-weighted sum of its keys (and values) with weights trained per position in the group (a tiny learned
compressor; at its initialisation, equal weights, it is CT-Average). Its weights are a checkpoint of its own
format (`config.json` + `model.safetensors`), loaded and saved by the method; it is a row of the paper tables
(`paper_name`) and draws in a style of its own. Registered when this module is imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from baselines.methods import CompressivePooling
from baselines.registry import register_method

FORMAT = "ct-learned"


class LearnedPooling(CompressivePooling):
    """Sinks + window + a FIFO of slots, each a learned weighting of its group's evicted tokens."""

    POOLS = ("learned",)

    def __init__(self, sinks: int = 128, window: int = 32640, pool: str = "learned", ratio: int = 2,
                 slots: int | None = None) -> None:
        super().__init__(sinks=sinks, window=window, pool=pool, ratio=ratio, slots=slots)
        self.logits = torch.zeros(ratio)  # the trained parameters: one weight per position in a group

    def pool_groups(self, groups: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.logits.to(groups.device, torch.float32), 0).to(groups.dtype)
        return (groups * weights[:, None]).sum(3)

    def load_checkpoint(self, model: nn.Module, folder: str) -> None:
        config = json.loads((Path(folder) / "config.json").read_text())
        if config.get("format") != FORMAT or config.get("ratio") != self.ratio:
            raise ValueError(f"not a {FORMAT} checkpoint of ratio {self.ratio} (its config: {config})")
        self.logits = load_file(str(Path(folder) / "model.safetensors"))["logits"].float()

    def save_checkpoint(self, model: nn.Module, folder: str) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "config.json").write_text(json.dumps({"format": FORMAT, "ratio": self.ratio}))
        save_file({"logits": self.logits.detach().float().contiguous()}, str(Path(folder) / "model.safetensors"))


register_method("ct-learned", f"{__name__}:LearnedPooling", costs="baselines.method_costs:CompressiveCosts",
                pool="learned", ratio=2, needs_checkpoint=True, paper_name="CT-Learned",
                style={"color": "#56B4E9", "marker": "*", "linestyle": (0, (2, 1, 2, 3)), "hatch": "++"})
