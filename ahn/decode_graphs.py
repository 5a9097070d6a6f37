"""CUDA graphs for AHN's one-token decode step.

Per layer and decoded token, AHN adds about sixty small kernels to the model's own: the new token's write
gates, the q/k norms, one step of the recurrence, the gated norm and the per-head output map. Each is a few
microseconds of math behind a longer launch, so launches, not FLOPs, set the decode time. A graph captured
once per layer (and input shape) replays them as one launch; the eager code stays the reference and the
fallback, and a GPU test holds the two together (`tests/ahn/test_fla_gpu.py`).

A replay reads its inputs from fixed buffers and writes fixed outputs, so a call copies the inputs in and
clones the outputs out: nothing a caller keeps (a cache's state, say) aliases a buffer the next replay
overwrites. A graph holds the addresses of the cell's parameters; when they change (a `.to()`, a new
checkpoint loaded by assignment) the graph is captured again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from baselines import fast_paths

ENV_SWITCH = fast_paths.VARIABLES["decode_graphs"]  # "0" turns the graphs off (eager decode)


def enabled_by_env() -> bool:
    return fast_paths.current().decode_graphs


def can_capture(*tensors: Tensor) -> bool:
    """Graphs only for CUDA inputs outside autograd and outside another capture."""
    return (all(t.is_cuda for t in tensors) and not torch.is_grad_enabled()
            and not torch.cuda.is_current_stream_capturing())


def warm_up(fn: Callable[..., tuple[Tensor, ...]], inputs: Sequence[Tensor], times: int,
            side: torch.cuda.Stream | None = None) -> tuple[Tensor, ...]:
    """Run `fn(*inputs)` `times` times on a side stream before a capture (the first calls compile kernels, pick
    algorithms and allocate workspaces, none of which a capture may do); returns the last call's outputs."""
    side = side or torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(times):
            out = fn(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    return tuple(out)


class GraphedStep:
    """`fn(*inputs) -> tuple[Tensor, ...]` captured as one CUDA graph for inputs of these shapes and dtypes."""

    def __init__(self, fn: Callable[..., tuple[Tensor, ...]], inputs: Sequence[Tensor], warmup: int = 2) -> None:
        self.static_in = tuple(t.detach().clone() for t in inputs)
        warm_up(fn, self.static_in, warmup)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = tuple(fn(*self.static_in))

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        for buffer, value in zip(self.static_in, inputs, strict=True):
            buffer.copy_(value)
        self.graph.replay()
        return tuple(t.clone() for t in self.static_out)


class GraphCache:
    """One captured graph per name (e.g. layer and step kind), recaptured when shapes or parameters change."""

    def __init__(self) -> None:
        self._graphs: dict[object, tuple[tuple, GraphedStep]] = {}
        self.captures = 0

    def __len__(self) -> int:
        return len(self._graphs)

    def clear(self) -> None:
        self._graphs.clear()

    def run(self, name: object, fn: Callable[..., tuple[Tensor, ...]], inputs: Sequence[Tensor],
            params: Sequence[Tensor]) -> tuple[Tensor, ...]:
        signature = (tuple((tuple(t.shape), t.dtype, t.device) for t in inputs),
                     tuple(p.data_ptr() for p in params))
        entry = self._graphs.get(name)
        if entry is None or entry[0] != signature:
            entry = (signature, GraphedStep(fn, inputs))
            self._graphs[name] = entry
            self.captures += 1
        return entry[1](*inputs)
