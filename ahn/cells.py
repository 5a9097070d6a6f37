"""The three AHN cells (GatedDeltaNet, DeltaNet, Mamba2) as parameter-exact modules (`docs/AHN.md` §2.2, §5–§7).

A cell owns only the released AHN parameters; it has no q/k/v projections of its own (it reuses the
layer's post-RoPE q, k and its v) and keeps no state on the module: the caller's cache holds the state
and the gates. Parameter names and shapes are exactly the released ones, so a decoder layer that holds
the cell as ``layer.ahn.fn`` has state-dict keys ``model.layers.{i}.ahn.fn.<param>``.

Uniform API, called by the attention code in this order:

``write_gates(x[B,T,d]) -> dict[str, Tensor[B,T,H]]``
    Per-token write gates from the input-layernormed hidden state of the token being written
    (GDN: ``beta`` in x's dtype and ``g`` fp32 = -exp(A_log) softplus(a_proj(x) + dt_bias); DN: ``beta``;
    Mamba2: ``dt`` fp32 = softplus(dt_proj(x) + dt_bias)). Stored in the cache for window tokens.
``gate_bytes_per_token_per_head(dtype) -> int``
    Bytes ``write_gates`` stores per token and head (GDN 2 + 4 for bf16, DN 2, Mamba2 4).
``scan(q, k, v, gates, state=None, backend="auto") -> (r[B,T,H,dh], new_state[B,H,dh,dh] fp32)``
    ``q``: post-RoPE queries of the reading tokens; ``k``, ``v``: post-RoPE keys and values of the
    written tokens, GQA-expanded to H heads; ``gates``: the written tokens' gates. Write t happens
    before read t (row t reads the state after write t). A None state is zero. Applies the cell's q/k
    normalisation, then the recurrence through :mod:`ahn.ops.dispatch`.
``output(r, x_query[B,T,d]) -> Tensor[B,T,H*dh]``
    Gated norm and the zero-initialised per-head output map; the result is added to the attention
    output before the layer's frozen ``o_proj``. In x's dtype.
``state_shape(batch)``, ``state_bytes(batch)``
    The fp32 state a request keeps per layer.

The gates' Linear layers that read the hidden state x are named in ``write_projections`` (those of the
write gates) and ``output_projections`` (the output gate); ``x_projections`` is both. ``write_gates`` and
``output`` are ``write_gates_from(proj)`` and ``output_from(r, proj, dtype)`` on ``proj = project_x(x)``,
one Linear per name. Where the written and the reading token are the same (the static one-token decode),
``project_x_merged(x, *x_weight())`` computes every projection with one matrix product instead.

Normalisation conventions (`docs/AHN.md` §2.2, table). GDN/DN use the fla chunk-kernel form
``x * rsqrt(sum x^2 + 1e-6)`` for every T. The official 1-step (decode) kernel used ``x / (||x|| + 1e-6)``
instead; the two differ by a relative ~1e-6/||x||, far below bf16 resolution for real q/k, so one
convention is used everywhere (decode then equals chunked prefill exactly). Mamba2 uses
``x / max(||x||, 1e-12)`` (F.normalize), no query scale, and its state in the [key, value] layout of
the ops, i.e. ``S = P^T`` with `docs/AHN.md` §2.2's ``P[value, key]``, so ``r = P q = S^T q``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ahn.layout import CELL_KINDS, CELLS, CellLayout
from ahn.ops import dispatch

CellKind = Literal["gdn", "dn", "mamba2"]
# Values of the checkpoint config key ``_ahn_implementation``.
AHN_IMPLEMENTATIONS: dict[str, str] = {kind: layout.implementation for kind, layout in CELLS.items()}

QK_NORM_EPS_DELTA = 1e-6  # fla chunk-kernel l2norm: x * rsqrt(sum x^2 + eps)
QK_NORM_EPS_MAMBA2 = 1e-12  # F.normalize
OUTPUT_NORM_EPS = 1e-5


class GroupLinear(nn.Module):
    """Per-head linear map with the released layout ``weight[group, in, out]``: head i outputs ``u_i @ W[i]``.

    The input ``[..., G*in]`` is split head-major into G chunks. Note this is the transpose of what
    ``nn.Linear`` would do with a ``[out, in]`` slice; loading a transposed weight is silently wrong
    because the shapes agree when in == out.
    """

    def __init__(self, groups: int, in_features: int, out_features: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.zeros(groups, in_features, out_features, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        u = x.reshape(*x.shape[:-1], self.groups, self.in_features).to(self.weight.dtype)
        y = torch.einsum("...gi,gio->...go", u, self.weight)
        return y.reshape(*x.shape[:-1], self.groups * self.out_features)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, in_features={self.in_features}, out_features={self.out_features}"


class RMSNormWeight(nn.Module):
    """Just the ``weight`` of an RMSNorm (state-dict key ``<name>.weight``); the cells apply it in fp32."""

    def __init__(self, size: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size, device=device, dtype=dtype))


def l2norm_delta(x: Tensor) -> Tensor:
    """GDN/DN q/k normalisation, computed in fp32 (fp64 stays fp64) and returned in x's dtype."""
    xf = x.double() if x.dtype == torch.float64 else x.float()
    return (xf * torch.rsqrt(xf.pow(2).sum(-1, keepdim=True) + QK_NORM_EPS_DELTA)).to(x.dtype)


def l2norm_mamba2(x: Tensor) -> Tensor:
    """Mamba2 q/k normalisation (F.normalize, eps 1e-12) in fp32, kept in fp32 (fp64 stays fp64)."""
    xf = x.double() if x.dtype == torch.float64 else x.float()
    return F.normalize(xf, p=2.0, dim=-1, eps=QK_NORM_EPS_MAMBA2)


def _rms(x: Tensor, eps: float) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def delta_output_norm(r: Tensor, gate: Tensor, weight: Tensor, eps: float, dtype: torch.dtype) -> Tensor:
    """GDN/DN read-out before ``o_proj``: per-head RMSNorm of r [B,T,H,dh] in fp32, times the norm's weight and
    silu(gate [B,T,H]), flattened to [B,T,H*dh] in ``dtype``."""
    u = _rms(_fp(r), eps) * _fp(weight) * F.silu(_fp(gate))[..., None]
    return u.flatten(-2).to(dtype)


def mamba2_output_norm(r: Tensor, gate: Tensor, weight: Tensor, eps: float, dtype: torch.dtype) -> Tensor:
    """Mamba2 read-out before ``o_proj``: r [B,T,H,dh] times silu(gate [B,T,H]), then one RMSNorm over all
    H*dh dims in fp32, times the norm's weight, in ``dtype``."""
    y = _fp(r) * F.silu(_fp(gate))[..., None]  # gate before the norm
    return (_rms(y.flatten(-2), eps) * _fp(weight)).to(dtype)


def l2norm_delta_contiguous(x: Tensor) -> Tensor:
    """``l2norm_delta(x)`` laid out contiguously (the fla kernels copy any other layout first)."""
    return l2norm_delta(x).contiguous()


FUSED_MIN_TOKENS = 64  # shorter inputs (a decode step) keep the plain functions: no compiled call per token


def fused(fn: Callable[..., Tensor], x: Tensor, tokens: int) -> Callable[..., Tensor]:
    """``fn`` or its compiled form: compiled (one fused kernel instead of one pass over the chunk per operation;
    `baselines.fused_layers`) for inference on chunks of more than FUSED_MIN_TOKENS tokens where
    AHN_HARNESS_FUSED_LAYERS turns fusion on for x's device (CUDA by default), outside any compiled region and
    CUDA-graph capture; the plain function otherwise (the reference, on the CPU and for training)."""
    if tokens <= FUSED_MIN_TOKENS or torch.is_grad_enabled() or torch.compiler.is_compiling():
        return fn
    from baselines import fused_layers

    if not fused_layers.enabled(x.device) or (x.is_cuda and torch.cuda.is_current_stream_capturing()):
        return fn
    return fused_layers.compiled_or_own(fn)


def _fp(x: Tensor) -> Tensor:
    """Upcast to fp32 for gate and norm math (fp64 stays fp64 so tests can run exactly)."""
    return x if x.dtype == torch.float64 else x.float()


def _init_linear(layer: nn.Linear, std: float) -> None:
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def inverse_softplus(y: Tensor) -> Tensor:
    """x with softplus(x) = y, for y > 0 (the dt_bias parameterisation)."""
    return y + torch.log(-torch.expm1(-y))


class AHNCell(nn.Module, ABC):
    """Shared shape bookkeeping and API of the three cells (see the module docstring)."""

    layout: CellLayout  # names, write gates and their bytes (ahn/layout.py, shared with the cost model)
    kind: str = ""
    ahn_implementation: str = ""
    gate_names: tuple[str, ...] = ()
    #: names of the nn.Linear layers on x: those the write gates read, and those the output gate reads
    write_projections: tuple[str, ...] = ()
    output_projections: tuple[str, ...] = ()

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int = 128, initializer_range: float = 0.02,
                 norm_eps: float = OUTPUT_NORM_EPS) -> None:
        super().__init__()
        self.hidden_size, self.num_heads, self.head_dim = hidden_size, num_heads, head_dim
        self.initializer_range, self.norm_eps = initializer_range, norm_eps

    # -- state -----------------------------------------------------------------------------------
    def state_shape(self, batch: int) -> tuple[int, int, int, int]:
        """``[B, H, dh(key), dh(value)]``."""
        return (batch, self.num_heads, self.head_dim, self.head_dim)

    def state_bytes(self, batch: int) -> int:
        """Bytes of the fp32 state for ``batch`` requests."""
        return 4 * math.prod(self.state_shape(batch))

    def new_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        """A zero fp32 state."""
        return torch.zeros(self.state_shape(batch), dtype=torch.float32, device=device)

    # -- projections of the hidden state x ----------------------------------------------------------
    @property
    def x_projections(self) -> tuple[str, ...]:
        """Every Linear on x, write gates' first: the order of the rows of ``x_weight()``."""
        return self.write_projections + self.output_projections

    def project_x(self, x: Tensor, names: tuple[str, ...] | None = None) -> dict[str, Tensor]:
        """The named projections of x (default: all ``x_projections``), one nn.Linear each."""
        return {name: getattr(self, name)(x) for name in (self.x_projections if names is None else names)}

    def x_weight(self) -> tuple[Tensor, Tensor | None]:
        """The ``x_projections``' weights stacked along the output, ``[sum out_features, d]``, and their biases
        (None where no layer has one; a zero bias for a layer without one)."""
        layers = [getattr(self, name) for name in self.x_projections]
        weight = torch.cat([layer.weight for layer in layers])
        if all(layer.bias is None for layer in layers):
            return weight, None
        return weight, torch.cat([layer.weight.new_zeros(layer.out_features) if layer.bias is None else layer.bias
                                  for layer in layers])

    def project_x_merged(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> dict[str, Tensor]:
        """``project_x(x)`` with one matrix product over ``x_weight()``'s weight and bias, split by name."""
        sizes = [getattr(self, name).out_features for name in self.x_projections]
        return dict(zip(self.x_projections, F.linear(x, weight, bias).split(sizes, dim=-1), strict=True))

    def write_gates(self, x: Tensor) -> dict[str, Tensor]:
        """See the module docstring (uniform API)."""
        return self.write_gates_from(self.project_x(x, self.write_projections))

    def output(self, r: Tensor, x_query: Tensor) -> Tensor:
        """See the module docstring (uniform API)."""
        return self.output_from(r, self.project_x(x_query, self.output_projections), x_query.dtype)

    # -- API implemented per cell (abstract: a cell missing one cannot be built) -----------------
    @abstractmethod
    def write_gates_from(self, proj: dict[str, Tensor]) -> dict[str, Tensor]:
        """The write gates from the written tokens' ``write_projections`` (``proj``: name -> projection)."""

    @abstractmethod
    def gate_bytes_per_token_per_head(self, dtype: torch.dtype) -> int:
        """See the module docstring (uniform API)."""

    @abstractmethod
    def scan(self, q: Tensor, k: Tensor, v: Tensor, gates: dict[str, Tensor], state: Tensor | None = None,
             backend: str = "auto") -> tuple[Tensor, Tensor]:
        """See the module docstring (uniform API)."""

    @abstractmethod
    def output_from(self, r: Tensor, proj: dict[str, Tensor], dtype: torch.dtype) -> Tensor:
        """``output`` from the reading tokens' ``output_projections`` (``proj``); ``dtype`` is x_query's."""

    def forward(self, q: Tensor, k: Tensor, v: Tensor, x_write: Tensor, x_query: Tensor,
                state: Tensor | None = None, backend: str = "auto") -> tuple[Tensor, Tensor]:
        """Convenience: gates from ``x_write``, scan, output. Returns (m[B,T,H*dh], new_state)."""
        r, new_state = self.scan(q, k, v, self.write_gates(x_write), state, backend=backend)
        return self.output(r, x_query), new_state

    def _check_qkv(self, q: Tensor, k: Tensor, v: Tensor) -> None:
        want = (self.num_heads, self.head_dim)
        for name, t in (("q", q), ("k", k), ("v", v)):
            if t.ndim != 4 or tuple(t.shape[2:]) != want:
                raise ValueError(f"{type(self).__name__}.scan: {name} must be [B,T,{want[0]},{want[1]}] "
                                 f"(GQA-expanded), got {tuple(t.shape)}")

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, num_heads={self.num_heads}, head_dim={self.head_dim}"


class _DeltaCell(AHNCell):
    """GDN and DN share the read-out: per-head RMSNorm x o_norm.weight x silu(scalar gate), then o_proj."""

    output_projections = ("g_proj",)

    def _init_delta(self, device, dtype) -> None:
        d, H, dh = self.hidden_size, self.num_heads, self.head_dim
        self.b_proj = nn.Linear(d, H, bias=False, device=device, dtype=dtype)
        self.g_proj = nn.Linear(d, H, bias=False, device=device, dtype=dtype)
        self.o_norm = RMSNormWeight(dh, device=device, dtype=dtype)
        self.o_proj = GroupLinear(H, dh, dh, device=device, dtype=dtype)

    def output_from(self, r: Tensor, proj: dict[str, Tensor], dtype: torch.dtype) -> Tensor:
        norm = fused(delta_output_norm, r, r.shape[1])
        return self.o_proj(norm(r, proj["g_proj"], self.o_norm.weight, self.norm_eps, dtype)).to(dtype)

    def _scan(self, q, k, v, beta, g, state, backend):
        self._check_qkv(q, k, v)
        norm = fused(l2norm_delta_contiguous, q, q.shape[1])
        return dispatch.delta_rule(norm(q), norm(k), v, beta, g, scale=self.head_dim ** -0.5,
                                   initial_state=state, backend=backend)


class GatedDeltaNetCell(_DeltaCell):
    """AHN-GDN: ``S <- gamma S; v' = beta (v - S^T k); S <- S + k v'^T``; read ``S^T q / sqrt(dh)``."""

    layout = CELLS["gdn"]
    kind = layout.kind
    ahn_implementation = layout.implementation
    gate_names = layout.gate_names
    write_projections = ("b_proj", "a_proj")

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int = 128, initializer_range: float = 0.02,
                 norm_eps: float = OUTPUT_NORM_EPS, *, device=None, dtype=None) -> None:
        super().__init__(hidden_size, num_heads, head_dim, initializer_range, norm_eps)
        H = num_heads
        self._init_delta(device, dtype)
        self.a_proj = nn.Linear(hidden_size, H, bias=False, device=device, dtype=dtype)
        self.A_log = nn.Parameter(torch.empty(H, device=device, dtype=dtype))
        self.D = nn.Parameter(torch.ones(H, device=device, dtype=dtype))  # released, never used (docs/AHN.md §2.2)
        self.dt_bias = nn.Parameter(torch.empty(H, device=device, dtype=dtype))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4,
                         A_min: float = 0.0, A_max: float = 16.0) -> None:
        """docs/AHN.md §7: gates N(0, initializer_range), A ~ U(A_min, A_max) = U(0,16), dt log-uniform in
        [dt_min, dt_max], D = 1, o_proj = 0. The per-token decay is exp(-A dt): the defaults forget within tens
        of tokens, a training config may start with a longer memory (``cell_init``)."""
        if not (0 <= A_min < A_max and 0 < dt_min <= dt_max):
            raise ValueError(f"GDN init needs 0 <= A_min < A_max and 0 < dt_min <= dt_max, got A in "
                             f"[{A_min}, {A_max}], dt in [{dt_min}, {dt_max}]")
        for layer in (self.b_proj, self.a_proj, self.g_proj):
            _init_linear(layer, self.initializer_range)
        A = torch.empty_like(self.A_log, dtype=torch.float32).uniform_(A_min, A_max)
        self.A_log.copy_(A.clamp_min(torch.finfo(torch.float32).tiny).log())
        u = torch.rand_like(self.dt_bias, dtype=torch.float32)
        dt = (u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).exp().clamp_min(dt_floor)
        self.dt_bias.copy_(inverse_softplus(dt))
        self.D.fill_(1.0)
        self.o_norm.weight.fill_(1.0)
        self.o_proj.weight.zero_()

    def write_gates_from(self, proj: dict[str, Tensor]) -> dict[str, Tensor]:
        beta = torch.sigmoid(proj["b_proj"])
        g = -_fp(self.A_log).exp() * F.softplus(_fp(proj["a_proj"]) + _fp(self.dt_bias))
        return {"beta": beta, "g": g}

    def gate_bytes_per_token_per_head(self, dtype: torch.dtype) -> int:
        return self.layout.gate_bytes_per_token_per_head(dtype.itemsize)

    def scan(self, q, k, v, gates, state=None, backend="auto"):
        return self._scan(q, k, v, gates["beta"], gates["g"], state, backend)


class DeltaNetCell(_DeltaCell):
    """AHN-DN: the gated delta rule with gamma = 1."""

    layout = CELLS["dn"]
    kind = layout.kind
    ahn_implementation = layout.implementation
    gate_names = layout.gate_names
    write_projections = ("b_proj",)

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int = 128, initializer_range: float = 0.02,
                 norm_eps: float = OUTPUT_NORM_EPS, *, device=None, dtype=None) -> None:
        super().__init__(hidden_size, num_heads, head_dim, initializer_range, norm_eps)
        self._init_delta(device, dtype)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """docs/AHN.md §7: gates N(0, initializer_range), norm 1, o_proj = 0."""
        for layer in (self.b_proj, self.g_proj):
            _init_linear(layer, self.initializer_range)
        self.o_norm.weight.fill_(1.0)
        self.o_proj.weight.zero_()

    def write_gates_from(self, proj: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"beta": torch.sigmoid(proj["b_proj"])}

    def gate_bytes_per_token_per_head(self, dtype: torch.dtype) -> int:
        return self.layout.gate_bytes_per_token_per_head(dtype.itemsize)

    def scan(self, q, k, v, gates, state=None, backend="auto"):
        return self._scan(q, k, v, gates["beta"], None, state, backend)


class Mamba2Cell(AHNCell):
    """AHN-Mamba2: ``P <- exp(dt a) P + dt v k^T``; read ``P q`` (no scale), via the scalar-decay op.

    Mapping to :func:`ahn.ops.dispatch.scalar_decay` with ``S = P^T``: keys ``dt * k_hat``, values v,
    log-decay ``g = dt * a`` with ``a = -exp(A_log)``, queries ``q_hat``, scale 1.
    """

    layout = CELLS["mamba2"]
    kind = layout.kind
    ahn_implementation = layout.implementation
    gate_names = layout.gate_names
    write_projections = ("dt_proj",)
    output_projections = ("g_proj",)

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int = 128, initializer_range: float = 0.02,
                 norm_eps: float = OUTPUT_NORM_EPS, *, device=None, dtype=None) -> None:
        super().__init__(hidden_size, num_heads, head_dim, initializer_range, norm_eps)
        d, H, dh = hidden_size, num_heads, head_dim
        self.dt_bias = nn.Parameter(torch.empty(H, device=device, dtype=dtype))
        self.A_log = nn.Parameter(torch.empty(H, device=device, dtype=dtype))
        self.norm = RMSNormWeight(H * dh, device=device, dtype=dtype)
        self.dt_proj = nn.Linear(d, H, bias=True, device=device, dtype=dtype)
        self.g_proj = nn.Linear(d, H, bias=True, device=device, dtype=dtype)
        self.o_proj = GroupLinear(H, dh, dh, device=device, dtype=dtype)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, dt_bias: float = 1.0, A_scale: float = 1.0) -> None:
        """docs/AHN.md §7: A_log = log(A_scale * (1..H)) with A_scale = 1, dt_bias = 1, gates N(0, initializer_range)
        with zero bias, o_proj = 0. The per-token decay is exp(-A softplus(dt_proj x + dt_bias)), about 0.27 for
        head 1 at the defaults; a training config may start with a longer memory (``cell_init``)."""
        if not A_scale > 0:
            raise ValueError(f"Mamba2 init needs A_scale > 0, got {A_scale}")
        for layer in (self.dt_proj, self.g_proj):
            _init_linear(layer, self.initializer_range)
        H = self.num_heads
        A = A_scale * torch.arange(1, H + 1, dtype=torch.float32, device=self.A_log.device)
        self.A_log.copy_(A.log())
        self.dt_bias.fill_(dt_bias)
        self.norm.weight.fill_(1.0)
        self.o_proj.weight.zero_()

    def write_gates_from(self, proj: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"dt": F.softplus(_fp(proj["dt_proj"]) + _fp(self.dt_bias))}

    def gate_bytes_per_token_per_head(self, dtype: torch.dtype) -> int:
        return self.layout.gate_bytes_per_token_per_head(dtype.itemsize)

    def scan(self, q, k, v, gates, state=None, backend="auto"):
        self._check_qkv(q, k, v)
        dt = gates["dt"]
        dt = dt if dt.dtype == torch.float64 else dt.float()
        a = -_fp(self.A_log).exp().to(dt.dtype)
        k_in = l2norm_mamba2(k) * dt[..., None]
        return dispatch.scalar_decay(l2norm_mamba2(q), k_in, v, dt * a, scale=1.0, initial_state=state,
                                     backend=backend)

    def output_from(self, r: Tensor, proj: dict[str, Tensor], dtype: torch.dtype) -> Tensor:
        norm = fused(mamba2_output_norm, r, r.shape[1])
        return self.o_proj(norm(r, proj["g_proj"], self.norm.weight, self.norm_eps, dtype)).to(dtype)


CELL_CLASSES: dict[str, type[AHNCell]] = {"gdn": GatedDeltaNetCell, "dn": DeltaNetCell, "mamba2": Mamba2Cell}


def make_cell(kind: str, hidden_size: int, num_heads: int, head_dim: int = 128, initializer_range: float = 0.02,
              norm_eps: float = OUTPUT_NORM_EPS, *, device=None, dtype=None) -> AHNCell:
    """Build a cell by kind ("gdn", "dn", "mamba2"; the implementation names are accepted too)."""
    key = kind_from_name(kind)
    return CELL_CLASSES[key](hidden_size, num_heads, head_dim, initializer_range, norm_eps,
                             device=device, dtype=dtype)


def kind_from_name(name: str) -> str:
    """Map "gdn" / "GatedDeltaNet" / ... to the short kind; a clear error for anything else."""
    lowered = {k: k for k in CELL_KINDS} | {v.lower(): k for k, v in AHN_IMPLEMENTATIONS.items()}
    key = lowered.get(str(name).lower())
    if key is None:
        valid = ", ".join(f"{k!r} ({AHN_IMPLEMENTATIONS[k]})" for k in CELL_KINDS)
        raise ValueError(f"unknown AHN cell kind {name!r}; valid kinds: {valid}")
    return key


def init_options(kind: str) -> tuple[str, ...]:
    """The keyword arguments a cell's ``reset_parameters`` takes (what a training config's ``cell_init`` may
    set), without the fixed floor of GDN's dt."""
    import inspect

    params = inspect.signature(CELL_CLASSES[kind_from_name(kind)].reset_parameters).parameters
    return tuple(name for name in params if name not in ("self", "dt_floor"))


def count_parameters(kind: str, hidden_size: int, num_heads: int, head_dim: int = 128) -> int:
    """Parameters of one cell, counted on the meta device (no memory)."""
    cell = make_cell(kind, hidden_size, num_heads, head_dim, device="meta")
    return sum(p.numel() for p in cell.parameters())
