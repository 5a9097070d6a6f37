"""Fused RMSNorm and gated MLP for prefill on a GPU (on by default on CUDA).

A profile of ahn-gdn's 131,072-token prefill on an H100 spent about 1 s of its 4.6 s of GPU kernels on
elementwise work (`bench/profile_prefill.py`, docs/PERFORMANCE.md): each RMSNorm reads and writes the chunk's hidden states
five times in fp32, and the MLP's SiLU and product each make a pass over the 11,008-wide intermediate. Here the
two are written as plain functions of their tensors (:func:`rms_norm`, :func:`gated_mlp`, the readable
reference, equal to Hugging Face's Qwen2 / Llama modules bit for bit), compiled once by inductor into fused
kernels, and installed over the model's modules for the length of a prefill (:func:`fused_layers`). One
compiled function serves every layer, since the weights are arguments rather than module state.

A module is replaced only if its own forward gives bit-identical output to the plain function on a probe
input (checked once per module class), so a norm of another convention (Gemma's ``1 + weight``, say) or an MLP
with another activation keeps its own forward.

The same switch compiles the split window attention's merge of its pieces (`baselines.split_attention.combine`).
On an H100 the two took a 131,072-token prefill from 5.41 to 4.91 s (ahn-gdn) and from 6.86 to 5.90 s (full
attention in one pass), median of 5 each, off and on in the same run (`bench/bench_gpu.py --fused-layers 0,1`, `leaderboards/perf/prefill-full-128k-h100/`).

The block also swaps the model's own ``apply_rotary_pos_emb`` (of the module its attention class comes from)
for its compiled self: one kernel where eager runs eight (``rotate_half``'s concatenation, four products and two
sums over the chunk's queries and keys, ~0.13 s of a 131,072-token ahn-gdn prefill on an H100). Two machines
measured that prefill 4.19 → 4.10 s and 4.32 → 4.21 s (`bench/bench_gpu.py --fused-rotary 0,1`); ``AHN_HARNESS_FUSED_ROTARY=0`` keeps the model's own.

The switch also compiles the AHN cells' q/k and read-out norms for long inference chunks (`ahn.cells.fused`,
through :func:`compiled_or_own`).

``AHN_HARNESS_FUSED_LAYERS``: ``1`` (default) on CUDA devices; ``0`` off; ``force`` on any device (tests).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import types
import warnings
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from baselines import fast_paths

ENV = fast_paths.VARIABLES["fused_layers"]
SETTINGS = fast_paths.FUSED_LAYERS
ROTARY_ENV = fast_paths.VARIABLES["fused_rotary"]  # "1" (default): the rotary compiled too, inside the block; "0": the model's own
ROTARY_SETTINGS = fast_paths.FUSED_ROTARY


def setting() -> str:
    """AHN_HARNESS_FUSED_LAYERS (unset: "1"), read and checked with every switch (`baselines/fast_paths.py`)."""
    return fast_paths.current().fused_layers


def rotary_setting() -> str:
    """AHN_HARNESS_FUSED_ROTARY (unset: "1"), read and checked with every switch."""
    return fast_paths.current().fused_rotary


def enabled(device: torch.device) -> bool:
    value = setting()
    return value == "force" or (value == "1" and device.type == "cuda")


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen2 / Llama RMSNorm: normalise in fp32, cast back, then scale."""
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def gated_mlp(x: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """down(silu(gate x) * up x), the Qwen2 / Llama MLP without biases."""
    return F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), down)


@functools.cache
def compile_shared(fn: Callable) -> Callable:
    """``fn`` through inductor, once per function: dynamic shapes, so one compilation serves every chunk length."""
    return torch.compile(fn, dynamic=True, fullgraph=True)


def _is_norm(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (type(module).__name__.endswith("RMSNorm") and isinstance(weight, torch.Tensor) and weight.ndim == 1
            and isinstance(getattr(module, "variance_epsilon", None), float))


def _is_mlp(module: nn.Module) -> bool:
    parts = [getattr(module, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
    return (all(isinstance(p, nn.Linear) and p.bias is None for p in parts)
            and callable(getattr(module, "act_fn", None)))


def _plain(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The module's computation as a call of the plain function on its tensors, or None if it is neither kind."""
    if _is_norm(module):
        return lambda x: rms_norm(x, module.weight, module.variance_epsilon)
    if _is_mlp(module):
        return lambda x: gated_mlp(x, module.gate_proj.weight, module.up_proj.weight, module.down_proj.weight)
    return None


_AGREES: dict[tuple[type, type], bool] = {}  # (module class, activation class) -> forward equals the plain function


def _agrees(module: nn.Module, plain: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    kind = (type(module), type(getattr(module, "act_fn", None)))
    if kind not in _AGREES:
        width = module.weight.shape[0] if _is_norm(module) else module.gate_proj.in_features
        ref = next(module.parameters())
        g = torch.Generator(device=ref.device).manual_seed(0)
        x = torch.randn(2, 3, width, generator=g, device=ref.device, dtype=torch.float32).to(ref.dtype)
        with torch.no_grad():
            _AGREES[kind] = bool(torch.equal(module(x), plain(x)))
    return _AGREES[kind]


def rotary_modules(model: nn.Module) -> list[types.ModuleType]:
    """The Python modules whose ``apply_rotary_pos_emb`` the model's attention layers call (the convention of
    Hugging Face's Llama-style models, read the same way by `baselines.static_decode`)."""
    found = {}
    for module in model.modules():
        if hasattr(module, "q_proj") and hasattr(module, "k_proj"):
            source = sys.modules.get(type(module).__module__)
            if callable(getattr(source, "apply_rotary_pos_emb", None)):
                found[source.__name__] = source
    return list(found.values())


_SWAPPED: dict[str, Callable] = {}  # module name -> its own apply_rotary_pos_emb, while swapped
_UNCOMPILABLE: set[Callable] = set()  # functions inductor failed on in this process: they run as they are


@functools.cache
def compiled_or_own(fn: Callable) -> Callable:
    """``fn`` compiled (`compile_shared`); where compiling it fails, ``fn`` itself from then on, with a warning
    (a model's function of another form should cost speed, not the run)."""
    compiled = compile_shared(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if fn not in _UNCOMPILABLE:
            try:
                return compiled(*args, **kwargs)
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - any compiler failure; fn's own errors re-raise below
                _UNCOMPILABLE.add(fn)
                warnings.warn(f"{fn.__module__}.{fn.__qualname__} runs uncompiled: torch.compile failed "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
                              stacklevel=2)
        return fn(*args, **kwargs)

    return call


@contextlib.contextmanager
def fused_layers(model: nn.Module, compiled: bool = True, rotary: bool = False) -> Iterator[int]:
    """Run every RMSNorm and gated MLP of ``model`` through the (compiled) plain functions inside the block, and
    (compiled, rotary) its rotary embedding through its compiled self; yields how many modules were replaced.
    On exit the model and its modules' functions are exactly as before."""
    patched = []
    swapped = []
    try:
        for source in rotary_modules(model) if compiled and rotary else ():
            if source.__name__ in _SWAPPED:  # already swapped by an enclosing block
                continue
            _SWAPPED[source.__name__] = source.apply_rotary_pos_emb
            swapped.append(source)
            source.apply_rotary_pos_emb = compiled_or_own(_SWAPPED[source.__name__])
        for module in model.modules():
            plain = _plain(module)
            if plain is None or "forward" in module.__dict__ or not _agrees(module, plain):
                continue
            if _is_norm(module):
                fn = compile_shared(rms_norm) if compiled else rms_norm
                forward = functools.partial(_norm_forward, fn)
            else:
                fn = compile_shared(gated_mlp) if compiled else gated_mlp
                forward = functools.partial(_mlp_forward, fn)
            module.forward = types.MethodType(forward, module)
            patched.append(module)
        yield len(patched)
    finally:
        for module in patched:
            del module.forward
        for source in swapped:
            source.apply_rotary_pos_emb = _SWAPPED.pop(source.__name__)


def _norm_forward(fn: Callable, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return fn(x, module.weight, module.variance_epsilon)


def _mlp_forward(fn: Callable, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return fn(x, module.gate_proj.weight, module.up_proj.weight, module.down_proj.weight)


def maybe(model: nn.Module, device: torch.device) -> contextlib.AbstractContextManager:
    """:func:`fused_layers` when AHN_HARNESS_FUSED_LAYERS turns it on for ``device`` (CUDA, by default), else
    nothing."""
    return fused_layers(model, rotary=rotary_setting() == "1") if enabled(device) else contextlib.nullcontext()
