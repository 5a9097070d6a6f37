"""AHN as a memory method: sinks + sliding window, and every evicted token written into a recurrent cell.

The cell of layer i lives at `model.model.layers[i].ahn.fn`, so the state-dict keys are the released ones
(`model.layers.{i}.ahn.fn.<param>`). The method object owns the cells: detaching removes them from the model,
attaching again puts the same (possibly trained) cells back. The recurrent state and the write gates of window
tokens live in the request's cache.

Alignment (ahn.md §2.3): token t−W is written at step t, before the read of query t; so in a chunk, the evicted
tokens e_0..e_{n−1} are read by the queries e_i + W, which are the last n queries of the chunk.
"""

from __future__ import annotations

import torch
from torch import nn

from ahn.cells import make_cell
from baselines.cache import LayerMemory
from baselines.interface import ChunkPlan, MemoryMethod, decoder_layers
from baselines.methods import register_method

CELLS = ("gdn", "dn", "mamba2")


class AHNBlock(nn.Module):
    """Holder so the cell's parameters are named `ahn.fn.*` inside a decoder layer."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn


class AHNMethod(MemoryMethod):
    """Sinks + window attention plus an AHN cell (GatedDeltaNet, DeltaNet or Mamba2) per layer."""

    def __init__(self, cell: str = "gdn", sinks: int = 128, window: int = 32640, backend: str = "auto") -> None:
        if cell not in CELLS:
            raise ValueError(f"unknown AHN cell {cell!r}; valid cells: {', '.join(CELLS)}")
        if window is None:
            raise ValueError("AHN needs a finite window (tokens, sinks not counted)")
        super().__init__(sinks=sinks, window=window)
        self.cell, self.backend = cell, backend
        self.name = f"ahn-{cell}"
        self.blocks: nn.ModuleList | None = None

    def describe(self) -> dict:
        return {**super().describe(), "cell": self.cell}

    def build_blocks(self, model: nn.Module) -> nn.ModuleList:
        """Fresh cells (zero output maps: the method starts exactly as sinks + window)."""
        cfg = model.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        ref = next(model.parameters())
        blocks = nn.ModuleList(
            AHNBlock(make_cell(self.cell, hidden_size=cfg.hidden_size, num_heads=cfg.num_attention_heads,
                               head_dim=head_dim, initializer_range=getattr(cfg, "initializer_range", 0.02)))
            for _ in range(cfg.num_hidden_layers)
        )
        return blocks.to(device=ref.device, dtype=ref.dtype) if ref.device.type != "meta" else blocks

    def install(self, model: nn.Module) -> None:
        layers = decoder_layers(model)
        if self.blocks is None:
            self.blocks = self.build_blocks(model)
        if len(self.blocks) != len(layers):
            raise ValueError(f"this AHN has {len(self.blocks)} layers but the model has {len(layers)}")
        for layer, block in zip(layers, self.blocks):
            if hasattr(layer, "ahn") and layer.ahn is not block:
                raise RuntimeError("the model already carries another AHN module; detach it first")
            layer.ahn = block

    def uninstall(self, model: nn.Module) -> None:
        for layer in decoder_layers(model):
            if hasattr(layer, "ahn"):
                del layer.ahn

    def token_data(self, layer_idx: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.blocks[layer_idx].fn.write_gates(x)

    def absorb(
        self,
        layer_idx: int,
        layer: LayerMemory,
        plan: ChunkPlan,
        evicted: dict[str, torch.Tensor],
        query: torch.Tensor,
        x: torch.Tensor,
        start: int,
        new_memory: dict,
    ) -> tuple[torch.Tensor, int] | None:
        n = evicted["keys"].shape[2]
        if n == 0:
            return None
        c = query.shape[2]
        first = c - n
        first_pos = evicted["first_position"]
        if first_pos + self.window != start + first:  # the alignment rule of ahn.md §2.3
            raise AssertionError(f"AHN alignment broken: token {first_pos} read at {start + first}")
        fn = self.blocks[layer_idx].fn
        rep = query.shape[1] // evicted["keys"].shape[1]  # GQA: AHN head i uses KV head i // rep
        k = evicted["keys"].repeat_interleave(rep, dim=1).transpose(1, 2)
        v = evicted["values"].repeat_interleave(rep, dim=1).transpose(1, 2)
        q = query[:, :, first:].transpose(1, 2)
        gates = {name: t for name, t in evicted.items() if name not in ("keys", "values", "first_position")}
        r, state = fn.scan(q, k, v, gates, layer.memory.get("state"), backend=self.backend)
        new_memory["state"] = state
        return fn.output(r, x[:, first:]), first


def _factory(cell: str | None = None):
    def make(**kwargs) -> AHNMethod:
        if cell is not None:
            kwargs["cell"] = cell
        return AHNMethod(**kwargs)

    return make


register_method("ahn", _factory())
for _cell in CELLS:
    register_method(f"ahn-{_cell}", _factory(_cell))
