"""The recurrences: chunked == sequential, the sequential GDN == its closed matrix form, dispatch rules."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ahn.ops import (
    chunk_delta_rule,
    chunk_scalar_decay,
    delta_rule,
    delta_rule_one_pass,
    delta_rule_recurrent,
    resolve_backend,
    scalar_decay,
    scalar_decay_one_pass,
    scalar_decay_recurrent,
)
from tests.tolerance import assert_close_rounding

B, H, K, V = 2, 3, 8, 6


def _ops(T: int, chunk: int = 64) -> int:
    """The chain of one output: T recurrence steps of a K-term product each, plus a chunk's triangular solve."""
    return T * K + chunk * chunk


def inputs(T: int, dtype: torch.dtype, seed: int = 0, decay_scale: float = 2.0):
    """Random q, L2-normalised k, v, beta in (0,1), log-decays g <= 0 and an initial state."""
    g_ = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=g_, dtype=dtype)
    k = F.normalize(torch.randn(B, T, H, K, generator=g_, dtype=dtype), dim=-1)
    v = torch.randn(B, T, H, V, generator=g_, dtype=dtype)
    beta = torch.rand(B, T, H, generator=g_, dtype=dtype)
    g = -torch.rand(B, T, H, generator=g_, dtype=dtype) * decay_scale
    s0 = torch.randn(B, H, K, V, generator=g_, dtype=dtype)
    return q, k, v, beta, g, s0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T,chunk", [(1, 16), (7, 16), (16, 16), (17, 16), (50, 16), (33, 8), (130, 64)])
@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_chunk_delta_rule_equals_recurrence(dtype, T, chunk, gated, with_state):
    q, k, v, beta, g, s0 = inputs(T, dtype)
    g = g if gated else None
    s0 = s0 if with_state else None
    o1, s1 = delta_rule_recurrent(q, k, v, beta, g, initial_state=s0)
    o2, s2 = chunk_delta_rule(q, k, v, beta, g, initial_state=s0, chunk_size=chunk)
    assert o2.shape == (B, T, H, V) and o2.dtype == dtype
    assert_close_rounding(o2, o1, _ops(T, chunk), msg="output")
    assert_close_rounding(s2, s1, _ops(T, chunk), msg="state")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T,chunk", [(1, 16), (7, 16), (16, 16), (17, 16), (50, 16), (130, 64)])
@pytest.mark.parametrize("with_state", [True, False])
def test_chunk_scalar_decay_equals_recurrence(dtype, T, chunk, with_state):
    q, k, v, _, g, s0 = inputs(T, dtype, seed=1)
    s0 = s0 if with_state else None
    o1, s1 = scalar_decay_recurrent(q, k, v, g, initial_state=s0)
    o2, s2 = chunk_scalar_decay(q, k, v, g, initial_state=s0, chunk_size=chunk)
    assert_close_rounding(o2, o1, _ops(T, chunk), msg="output")
    assert_close_rounding(s2, s1, _ops(T, chunk), msg="state")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T", [1, 9])
@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_one_pass_form_equals_the_recurrence(dtype, T, gated, with_state):
    """Each token's reads from the state before its write (the static decode step's form) give the recurrence's
    outputs and states: the same sums in another order, so within the rounding of T steps of a K-term product and
    a few updates each (4 T K operations)."""
    q, k, v, beta, g, s0 = inputs(T, dtype, seed=3)
    s0 = s0 if with_state else None
    g = g if gated else None
    for (o1, s1), (o2, s2) in (
        (delta_rule_recurrent(q, k, v, beta, g, initial_state=s0, scale=0.7),
         delta_rule_one_pass(q, k, v, beta, g, initial_state=s0, scale=0.7)),
        (scalar_decay_recurrent(q, k, v, g if gated else torch.zeros_like(beta), initial_state=s0),
         scalar_decay_one_pass(q, k, v, g if gated else torch.zeros_like(beta), initial_state=s0)),
    ):
        assert o2.dtype == o1.dtype and s2.dtype == s1.dtype
        assert_close_rounding(o2, o1, 4 * _ops(T, 0), msg="output")
        assert_close_rounding(s2, s1, 4 * _ops(T, 0), msg="state")
    got = delta_rule(q, k, v, beta, g, initial_state=s0, scale=0.7, backend="one-pass")
    want = delta_rule_one_pass(q, k, v, beta, g, initial_state=s0, scale=0.7)
    assert all(torch.equal(x, y) for x, y in zip(got, want))  # dispatch runs it by name


@pytest.mark.parametrize("fn", [delta_rule_recurrent, chunk_delta_rule])
def test_empty_input_returns_empty_and_unchanged_state(fn):
    q, k, v, beta, g, s0 = inputs(0, torch.float32)
    o, s = fn(q, k, v, beta, g, initial_state=s0)
    assert o.shape == (B, 0, H, V)
    assert torch.equal(s, s0)
    o, s = scalar_decay(q, k, v, g, initial_state=s0)
    assert o.shape == (B, 0, H, V) and torch.equal(s, s0)
    o, s = delta_rule(q, k, v, beta, g)  # no state: zero state back
    assert torch.equal(s, torch.zeros(B, H, K, V))


def test_strong_decay_is_finite_in_chunks():
    """Cumulative log-decays of thousands must underflow to 0, never overflow (ratios on the causal triangle only)."""
    q, k, v, beta, g, s0 = inputs(100, torch.float32, decay_scale=200.0)
    for a, b in ((delta_rule_recurrent(q, k, v, beta, g, initial_state=s0),
                  chunk_delta_rule(q, k, v, beta, g, initial_state=s0, chunk_size=32)),
                 (scalar_decay_recurrent(q, k, v, g, initial_state=s0),
                  chunk_scalar_decay(q, k, v, g, initial_state=s0, chunk_size=32))):
        assert torch.isfinite(b[0]).all() and torch.isfinite(b[1]).all()
        assert_close_rounding(b[0], a[0], _ops(100, 32), msg="output")
        assert_close_rounding(b[1], a[1], _ops(100, 32), msg="state")


def test_gdn_recurrence_equals_closed_matrix_form():
    """Brute force, fp64, one head at a time: S_j = g_j (I - b_j k_j k_j^T) S_{j-1} + b_j k_j v_j^T, o_j = c S_j^T q_j."""
    T = 12
    q, k, v, beta, g, s0 = inputs(T, torch.float64, seed=3)
    scale = 0.37
    o, s = delta_rule_recurrent(q, k, v, beta, g, scale=scale, initial_state=s0)
    eye = torch.eye(K, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            S = s0[b, h].clone()
            for j in range(T):
                kj = k[b, j, h].reshape(K, 1)
                vj = v[b, j, h].reshape(V, 1)
                gamma, bj = torch.exp(g[b, j, h]), beta[b, j, h]
                S = gamma * (eye - bj * kj @ kj.T) @ S + bj * kj @ vj.T
                torch.testing.assert_close(o[b, j, h], scale * S.T @ q[b, j, h], atol=1e-12, rtol=1e-12)
            torch.testing.assert_close(s[b, h], S, atol=1e-12, rtol=1e-12)


def test_dn_is_gdn_without_decay():
    q, k, v, beta, g, s0 = inputs(9, torch.float64)
    a = delta_rule_recurrent(q, k, v, beta, None, initial_state=s0)
    b = delta_rule_recurrent(q, k, v, beta, torch.zeros_like(g), initial_state=s0)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_scalar_decay_equals_explicit_sum():
    """o_t = c * sum_{i<=t} exp(sum_{i<l<=t} g_l) (q_t . k_i) v_i + c * exp(sum_{l<=t} g_l) S0^T q_t."""
    T = 10
    q, k, v, _, g, s0 = inputs(T, torch.float64, seed=4)
    o, _ = scalar_decay_recurrent(q, k, v, g, scale=0.5, initial_state=s0)
    cum = g.cumsum(1)
    for t in range(T):
        dec = torch.exp(cum[:, t : t + 1] - cum[:, : t + 1])  # [B, t+1, H]
        scores = torch.einsum("bhk,bihk->bih", q[:, t], k[:, : t + 1]) * dec
        want = torch.einsum("bih,bihv->bhv", scores, v[:, : t + 1])
        want = want + torch.exp(cum[:, t])[..., None] * torch.einsum("bhkv,bhk->bhv", s0, q[:, t])
        torch.testing.assert_close(o[:, t], 0.5 * want, atol=1e-12, rtol=1e-12)


def test_chunked_gradients_equal_recurrent_gradients():
    """CPU training runs through the chunked form: its gradients must be the recurrence's."""
    T = 40
    base = inputs(T, torch.float64, seed=5)
    w_o = torch.randn(B, T, H, V, dtype=torch.float64)
    w_s = torch.randn(B, H, K, V, dtype=torch.float64)
    for op in ("delta", "scalar"):
        grads = []
        for impl in ("recurrent", "chunked"):
            q, k, v, beta, g, s0 = (x.clone().requires_grad_() for x in base)
            if op == "delta":
                o, s = delta_rule(q, k, v, beta, g, initial_state=s0, backend=impl, chunk_size=16)
                leaves = (q, k, v, beta, g, s0)
            else:
                o, s = scalar_decay(q, k, v, g, initial_state=s0, backend=impl, chunk_size=16)
                leaves = (q, k, v, g, s0)
            loss = (o * w_o).sum() + (s * w_s).sum()
            grads.append(torch.autograd.grad(loss, leaves))
        for a, b in zip(*grads):
            torch.testing.assert_close(b, a, atol=1e-9, rtol=1e-9)


def test_low_precision_inputs_compute_in_fp32():
    q, k, v, beta, g, s0 = inputs(20, torch.float32, seed=6)
    o16, s16 = delta_rule(q.bfloat16(), k.bfloat16(), v.bfloat16(), beta.bfloat16(), g, initial_state=s0)
    o32, s32 = delta_rule(q.bfloat16().float(), k.bfloat16().float(), v.bfloat16().float(),
                          beta.bfloat16().float(), g, initial_state=s0)
    assert o16.dtype == torch.bfloat16 and s16.dtype == torch.float32
    torch.testing.assert_close(s16, s32, atol=0, rtol=0)  # the same fp32 arithmetic on the same values
    torch.testing.assert_close(o16, o32.bfloat16(), atol=0, rtol=0)


def test_dispatch_rules_on_cpu():
    q, k, v, beta, g, _ = inputs(64, torch.float32)
    assert resolve_backend("auto", "delta_rule", q, k, v, beta, g) == "recurrent"
    assert resolve_backend("reference", "delta_rule", q, k, v, beta, g) == "recurrent"
    q2, k2, v2, beta2, g2, _ = inputs(65, torch.float32)
    assert resolve_backend("auto", "delta_rule", q2, k2, v2, beta2, g2) == "chunked"
    assert resolve_backend("recurrent", "scalar_decay", q2, k2, v2, g2) == "recurrent"
    with pytest.raises(RuntimeError, match="backend='fla'.*not on a CUDA device"):
        delta_rule(q, k, v, beta, g, backend="fla")
    with pytest.raises(RuntimeError, match="backend='fla'"):
        scalar_decay(q, k, v, g, backend="fla")
    with pytest.raises(ValueError, match="unknown backend 'triton'.*auto, reference"):
        delta_rule(q, k, v, beta, g, backend="triton")
    with pytest.raises(ValueError, match=r"per-token gates must be \[B,T,H\]"):
        delta_rule(q, k, v, beta[..., :1], g)


def test_cpu_path_never_imports_fla(tmp_path: Path):
    """A poisoned `fla` package on the path: any import of it on the CPU path would crash the run."""
    (tmp_path / "fla").mkdir()
    (tmp_path / "fla" / "__init__.py").write_text("raise RuntimeError('fla imported on the CPU path')\n")
    code = textwrap.dedent("""
        import sys, torch
        import ahn, ahn.ops
        from ahn.cells import make_cell
        for kind in ("gdn", "dn", "mamba2"):
            cell = make_cell(kind, 16, 2, 4)
            x = torch.randn(1, 70, 16)
            q, k, v = (torch.randn(1, 70, 2, 4) for _ in range(3))
            m, s = cell(q, k, v, x, x, backend="auto")
        assert "fla" not in sys.modules
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[2])])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
