"""CUDA graphs for AHN's memory update of a prefill chunk .

Once the prefill's kernels were fused (`baselines.fused_layers`), a 131,072-token ahn-gdn prefill on an H100 ran
4.07 s of GPU kernels in ~4.9 s: the host fell behind the GPU (`bench/profile_prefill.py`). The largest
host item was the memory update of each layer and chunk: fla's chunked kernels launched from Python, 0.6–0.9 ms
of host time per call (864 calls) for about 0.25 ms of GPU work. The update of a chunk of a length seen before
now replays one CUDA graph per layer instead: its norms, gates, chunked recurrence and output map in one launch.

The memory is meant to stay that of one chunk, not one per layer: the graphs of one chunk length share one
memory pool (each replay overwrites the intermediates of the last, which nothing keeps) and one set of input and
output buffers. A call copies its inputs in, replays its layer's graph, which ends by writing the shared outputs,
and clones those out, so nothing a cache keeps aliases a buffer the next replay overwrites. A length is captured
the second time a layer meets it (a prompt's last, odd-length chunk stays eager), and at most `max_lengths`
lengths are kept. The eager update stays the reference and the fallback; a GPU test holds the two equal
(`tests/ahn/test_fla_gpu.py`).

Off by default: measured on an H100 with the fused layers on, one machine took the prefill from 4.69 to 4.42 s, the
next from 4.14 to 4.19 s (no gain). They hold about 0.1 GiB: the shared buffers, and the 32 MiB cuBLAS workspace
each stream keeps for the process's life (`bench/bench_gpu.py`, `bench/chunk_graph_memory.py`).
`AHN_HARNESS_CHUNK_GRAPHS=1` turns them on for CUDA inputs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ahn.decode_graphs import warm_up
from baselines import fast_paths

ENV_SWITCH = fast_paths.VARIABLES["chunk_graphs"]  # "0" (default) off; "1" on CUDA
SETTINGS = fast_paths.CHUNK_GRAPHS
MIN_TOKENS = 256  # shorter updates are cheap on the host; graphs for them would only cost memory


def setting() -> str:
    """AHN_HARNESS_CHUNK_GRAPHS (unset: "0"), read and checked with every switch (`baselines/fast_paths.py`)."""
    return fast_paths.current().chunk_graphs


@dataclass
class _Length:
    """What the graphs of one set of input shapes share."""

    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...] | None = None
    pool: tuple = field(default_factory=torch.cuda.graph_pool_handle)
    graphs: dict[object, tuple[tuple, torch.cuda.CUDAGraph]] = field(default_factory=dict)


class ChunkGraphs:
    """Per layer and input shapes, `fn(*inputs) -> tuple[Tensor, ...]` replayed as a CUDA graph from the second
    call on (:meth:`run` returns None for calls the caller runs eagerly)."""

    def __init__(self, max_lengths: int = 2, warmup: int = 2) -> None:
        self.max_lengths, self.warmup = max_lengths, warmup
        self._lengths: OrderedDict[tuple, _Length] = OrderedDict()  # least recently replayed first
        self._seen: dict[tuple, int] = {}  # (shapes, layer) → calls met without a graph
        self._side: torch.cuda.Stream | None = None  # one warm-up stream: its cached blocks serve every capture
        self.captures = 0
        self.replays = 0

    def clear(self) -> None:
        self._lengths.clear()
        self._seen.clear()

    def run(self, layer: object, fn: Callable[..., tuple[Tensor, ...]], inputs: Sequence[Tensor],
            params: Sequence[Tensor]) -> tuple[Tensor, ...] | None:
        shapes = tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)
        signature = tuple(p.data_ptr() for p in params)
        entry = self._lengths.get(shapes)
        graph = entry.graphs.get(layer) if entry is not None else None
        if graph is not None and graph[0] == signature:
            self._lengths.move_to_end(shapes)
            for buffer, value in zip(entry.inputs, inputs, strict=True):
                buffer.copy_(value)
        else:
            if len(self._seen) > 10_000:  # many odd lengths met once each: forget them
                self._seen.clear()
            seen = self._seen[shapes, layer] = self._seen.get((shapes, layer), 0) + 1
            if seen < 2:
                return None
            if entry is None:
                while len(self._lengths) >= self.max_lengths:  # the least recently used length goes
                    self._lengths.popitem(last=False)
                entry = self._lengths[shapes] = _Length(inputs=tuple(torch.empty_like(t) for t in inputs))
            graph = entry.graphs[layer] = (signature, self._capture(entry, fn, inputs))
        graph[1].replay()
        self.replays += 1
        return tuple(t.clone() for t in entry.outputs)

    def _capture(self, entry: _Length, fn: Callable[..., tuple[Tensor, ...]],
                 inputs: Sequence[Tensor]) -> torch.cuda.CUDAGraph:
        for buffer, value in zip(entry.inputs, inputs, strict=True):
            buffer.copy_(value)
        self._side = self._side or torch.cuda.Stream()
        out = warm_up(fn, entry.inputs, self.warmup, self._side)
        if entry.outputs is None:  # outside the pool: the graphs write them, nothing frees them
            entry.outputs = tuple(torch.empty_like(t) for t in out)
        del out
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=entry.pool):
            for buffer, value in zip(entry.outputs, fn(*entry.inputs), strict=True):
                buffer.copy_(value)
        self.captures += 1
        return graph
