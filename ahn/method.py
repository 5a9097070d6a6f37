"""AHN as a memory method: sinks + sliding window, and every evicted token written into a recurrent cell.

The cell of layer i lives at `model.model.layers[i].ahn.fn`, so the state-dict keys are the released ones
(`model.layers.{i}.ahn.fn.<param>`). The method object owns the cells: detaching removes them from the model,
attaching again puts the same (possibly trained) cells back. The recurrent state and the write gates of window
tokens live in the request's cache.

Alignment (`docs/AHN.md` §2.3): token t−W is written at step t, before the read of query t; so in a chunk, the evicted
tokens e_0..e_{n−1} are read by the queries e_i + W, which are the last n queries of the chunk.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ahn import chunk_graphs
from ahn.cells import make_cell
from ahn.decode_graphs import GraphCache, can_capture, enabled_by_env
from ahn.layout import cell_layout
from baselines import fast_paths
from baselines.cache import LayerMemory
from baselines.interface import STATIC_WEIGHT_PREFIX, ChunkPlan, MemoryMethod, decoder_layers

BACKEND_ENV = fast_paths.VARIABLES["ahn_backend"]  # the cells' backend when none is passed (default "auto")


class AHNBlock(nn.Module):
    """Holder so the cell's parameters are named `ahn.fn.*` inside a decoder layer."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn


class AHNMethod(MemoryMethod):
    """Sinks + window attention plus an AHN cell (GatedDeltaNet, DeltaNet or Mamba2) per layer."""

    def __init__(self, cell: str = "gdn", sinks: int = 128, window: int = 32640, backend: str | None = None,
                 decode_graphs: bool | None = None) -> None:
        """`decode_graphs`: replay each layer's one-token memory step as a CUDA graph (default: on, unless
        AHN_HARNESS_DECODE_GRAPHS=0); the eager path computes the same kernels one launch at a time.
        `backend` (ahn.ops.dispatch): None takes AHN_HARNESS_AHN_BACKEND, else "auto" (e.g. "reference" runs
        the PyTorch cells the tiny AHNs were trained through, and compiles no Triton kernel)."""
        from ahn.ops.dispatch import BACKENDS

        cell_layout(cell)  # a clear error naming the valid cells
        backend = backend if backend is not None else fast_paths.current().ahn_backend
        if backend not in BACKENDS:
            raise ValueError(f"unknown AHN backend {backend!r} (from {BACKEND_ENV} or backend=); "
                             f"valid: {', '.join(BACKENDS)}")
        if window is None:
            raise ValueError("AHN needs a finite window (tokens, sinks not counted)")
        super().__init__(sinks=sinks, window=window)
        self.cell, self.backend = cell, backend
        self.name = f"ahn-{cell}"
        self.blocks: nn.ModuleList | None = None
        self.decode_graphs = enabled_by_env() if decode_graphs is None else bool(decode_graphs)
        self.graphs = GraphCache()
        self.chunk_graphs = chunk_graphs.ChunkGraphs()  # prefill chunks' memory updates (ahn/chunk_graphs.py)
        self._chunk_graphs_failed = False

    def describe(self) -> dict:
        # "auto" is left out so the run configs (and their hashes) of earlier runs stay what they were
        return {**super().describe(), "cell": self.cell, **({"backend": self.backend} if self.backend != "auto" else {})}

    def load_checkpoint(self, model: nn.Module, folder: str) -> None:
        """An AHN-only checkpoint in the released format (`ahn/checkpoint.py`), for this method's cell."""
        from ahn.checkpoint import load_ahn_state_dict, read_ahn_config

        cfg = read_ahn_config(folder)
        if getattr(cfg, "cell_kind", self.cell) != self.cell:
            raise ValueError(f"it holds a {cfg.cell_kind} cell but the method is {self.name}")
        load_ahn_state_dict(folder, model, strict=True)

    def save_checkpoint(self, model: nn.Module, folder: str) -> None:
        """The cells of every layer as an AHN-only checkpoint in the released format."""
        from ahn.checkpoint import save_ahn_checkpoint

        save_ahn_checkpoint(model, folder, self.cell, model.config.to_dict())

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
        self.graphs.clear()
        self.chunk_graphs.clear()
        for layer in decoder_layers(model):
            if hasattr(layer, "ahn"):
                del layer.ahn

    def _graphed(self, x: torch.Tensor) -> bool:
        return self.decode_graphs and x.shape[1] == 1 and can_capture(x)

    def token_data(self, layer_idx: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        fn = self.blocks[layer_idx].fn
        if not self._graphed(x):
            return fn.write_gates(x)

        def gates(x_new):
            written = fn.write_gates(x_new)
            return tuple(written[name] for name in fn.gate_names)

        out = self._run_graph(("gates", layer_idx), gates, (x,), fn)
        if out is None:
            return fn.write_gates(x)
        return dict(zip(fn.gate_names, out, strict=True))

    def _chunk_graphed(self, x: torch.Tensor) -> bool:
        return (x.shape[1] >= chunk_graphs.MIN_TOKENS and not self._chunk_graphs_failed
                and chunk_graphs.setting() == "1" and can_capture(x))

    def _run_chunk_graph(self, layer_idx: int, step, inputs: tuple, fn: nn.Module) -> tuple | None:
        """The chunk's memory update replayed as its layer's graph; None where the caller runs it eagerly (a
        length met once so far, or graphs off from here on, with a warning, after a failed capture)."""
        try:
            return self.chunk_graphs.run(layer_idx, step, inputs, list(fn.parameters()))
        except torch.OutOfMemoryError:
            raise  # the sample's, not the graphs': they stay on for the next one
        except RuntimeError as exc:
            warnings.warn(f"AHN chunk graphs turned off, updating the memory eagerly: capture failed ({exc})",
                          stacklevel=2)
            self._chunk_graphs_failed = True
            self.chunk_graphs.clear()
            return None

    def _run_graph(self, name: tuple, step, inputs: tuple, fn: nn.Module) -> tuple | None:
        """The graphed step's outputs; None (and graphs off from here on, with a warning) if capture fails."""
        try:
            return self.graphs.run(name, step, inputs, list(fn.parameters()))
        except RuntimeError as exc:
            warnings.warn(f"AHN decode graphs turned off, decoding eagerly: capture failed ({exc})", stacklevel=2)
            self.decode_graphs = False
            self.graphs.clear()
            return None

    def _read_write(self, fn: nn.Module, q, k, v, gates: dict[str, torch.Tensor], state, x_query,
                    backend: str | None = None, proj: dict[str, torch.Tensor] | None = None):
        """Write the evicted tokens (k, v [B,Hkv,n,dh] and their gates), read with q [B,H,n,dh]. `proj`: the
        reading tokens' x projections if already computed (the static step), else the output gate reads x_query."""
        rep = q.shape[1] // k.shape[1]  # GQA: AHN head i uses KV head i // rep
        k = k.transpose(1, 2).repeat_interleave(rep, dim=2)  # [B,n,H,dh], contiguous as the kernels read it
        v = v.transpose(1, 2).repeat_interleave(rep, dim=2)
        r, state = fn.scan(q.transpose(1, 2), k, v, gates, state, backend=backend or self.backend)
        out = fn.output(r, x_query) if proj is None else fn.output_from(r, proj, x_query.dtype)
        return out, state

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
        if first_pos + self.window != start + first:  # the alignment rule of docs/AHN.md §2.3
            raise AssertionError(f"AHN alignment broken: token {first_pos} read at {start + first}")
        fn = self.blocks[layer_idx].fn
        q, k, v, x_query = query[:, :, first:], evicted["keys"], evicted["values"], x[:, first:]
        gates = {name: evicted[name] for name in fn.gate_names}
        state = layer.memory.get("state")

        def step(q, k, v, state, x_query, *gate_values):
            return self._read_write(fn, q, k, v, dict(zip(fn.gate_names, gate_values)), state, x_query)

        out = None
        if state is not None and self._graphed(x_query):  # one-token decode: one launch per layer
            out = self._run_graph(("memory", layer_idx, self.backend), step, (q, k, v, state, x_query, *gates.values()), fn)
        elif state is not None and self._chunk_graphed(x_query):  # a prefill chunk: one launch per layer
            out = self._run_chunk_graph(layer_idx, step, (q, k, v, state, x_query, *gates.values()), fn)
        rows, state = out if out is not None else self._read_write(fn, q, k, v, gates, state, x_query)
        new_memory["state"] = state
        return rows, first

    # ---- static decode (baselines.static_decode): the state and the window's write gates in fixed buffers ----
    # Besides them, "weight:x" (and "weight:x_bias") hold the cell's x projections as one matrix, so the step
    # computes the write and output gates' projections with one product; they are weights, not cache bytes.
    def static_memory(self, layer_idx, batch, layout, device, dtype):
        fn = self.blocks[layer_idx].fn
        state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        memory = {"state": torch.zeros(fn.state_shape(batch), dtype=state_dtype, device=device)}
        probe = fn.write_gates(torch.zeros(1, 1, fn.hidden_size, device=device, dtype=dtype))
        for name in fn.gate_names:  # one gate ring per gate, aligned with the K/V ring
            memory[f"gate:{name}"] = torch.zeros(batch, layout.ring, fn.num_heads, dtype=probe[name].dtype,
                                                 device=device)
        memory.update(_merged_x_weight(fn))
        return memory

    def load_static_memory(self, layer_idx, memory, row, layer, layout, nonsink_positions):
        fn = self.blocks[layer_idx].fn
        for key, value in _merged_x_weight(fn).items():  # the cell's weights as they are now
            memory[key].copy_(value)
        state = layer.memory.get("state")
        memory["state"][row] = 0 if state is None else state[0].to(memory["state"].dtype)
        ring_idx = nonsink_positions - layout.sinks
        if layout.evicts:
            ring_idx = ring_idx % layout.ring
        for name in fn.gate_names:
            ring = memory[f"gate:{name}"]
            ring[row].zero_()
            if name in layer.token_data:
                ring[row][ring_idx] = layer.token_data[name][0].to(ring.dtype)

    def static_memory_step(self, layer, memory, layout, x, query, evicted_keys, evicted_values, slot,
                           evicting, nonsink):
        """The eager `absorb` for one token per row: write the evicted token (its gates come from the gate
        ring), read with the query, keep the new token's gates in the slot the evicted token frees.

        Under torch.compile one token per row is one step of the recurrence in its one-pass form
        (`ahn.ops.naive`, fp32 state: the token's reads from the state before its write, so inductor reads the
        state once in one batched product and updates it in one fused pass, merged with the `where` below),
        exact, and fused with the gates and norms around it (an explicit backend="fla" keeps fla's one-token
        kernel); uncompiled, the method's backend runs as in the eager engine."""
        fn = layer.ahn.fn
        rows = torch.arange(x.shape[0], device=x.device)
        ring_idx = (slot - layout.sinks).clamp(min=0)
        gates = {name: memory[f"gate:{name}"][rows, ring_idx][:, None] for name in fn.gate_names}
        state = memory["state"]
        backend = "one-pass" if torch.compiler.is_compiling() and self.backend != "fla" else self.backend
        # the new token's projections, written and read with: one product over the merged weight
        proj = fn.project_x_merged(x, memory[f"{STATIC_WEIGHT_PREFIX}x"], memory.get(f"{STATIC_WEIGHT_PREFIX}x_bias"))
        out, new_state = self._read_write(fn, query, evicted_keys, evicted_values, gates, state, x, backend, proj)
        state.copy_(torch.where(evicting[:, None, None, None], new_state.to(state.dtype), state))
        for name, new in fn.write_gates_from(proj).items():
            ring = memory[f"gate:{name}"]
            ring.index_put_((rows, ring_idx), torch.where(nonsink[:, None], new[:, 0].to(ring.dtype),
                                                          ring[rows, ring_idx]))
        return torch.where(evicting[:, None, None], out, torch.zeros_like(out))

    def static_memory_nbytes(self, layer_idx, memory, row, n_nonsink, evicted_any):
        fn = self.blocks[layer_idx].fn
        gates = sum(memory[f"gate:{name}"][row, 0].numel() * memory[f"gate:{name}"].element_size()
                    for name in fn.gate_names)
        state = memory["state"][row].numel() * memory["state"].element_size() if evicted_any else 0
        return n_nonsink * gates + state


def _merged_x_weight(fn: nn.Module) -> dict[str, torch.Tensor]:
    """The cell's x projections as one weight and bias (`AHNCell.x_weight`), detached: the static step's buffers."""
    weight, bias = fn.x_weight()
    merged = {f"{STATIC_WEIGHT_PREFIX}x": weight.detach()}
    return merged if bias is None else merged | {f"{STATIC_WEIGHT_PREFIX}x_bias": bias.detach()}
