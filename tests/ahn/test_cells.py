"""The cells: released names/shapes/counts, init, gate and norm numerics, scan semantics, output layout."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ahn.cells import (
    CELL_KINDS,
    DeltaNetCell,
    GatedDeltaNetCell,
    GroupLinear,
    Mamba2Cell,
    count_parameters,
    make_cell,
)

D, H, DH = 24, 3, 8  # tiny cell: hidden 24, 3 heads of dim 8


def randomized(kind: str, dtype=torch.float64, seed: int = 0):
    """A cell whose every parameter is random (so no test passes by a zero or a one)."""
    torch.manual_seed(seed)
    cell = make_cell(kind, D, H, DH, dtype=dtype)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            if name == "A_log":
                p.copy_(torch.rand(H).mul(2).sub(1))
            else:
                p.copy_(torch.randn(p.shape) * (0.3 if p.ndim == 3 else 1.0))
    return cell


def qkv(T: int, dtype=torch.float64, seed: int = 1, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, T, H, DH, generator=g, dtype=dtype) for _ in range(3))
    x = torch.randn(batch, T, D, generator=g, dtype=dtype)
    return q, k, v, x


# -- released parameter names, shapes and counts (docs/AHN.md §5, §6) ----------------------------------------

SPEC_SHAPES = {  # docs/AHN.md §5 table, with d = hidden, H heads, 128 -> dh
    "gdn": {"b_proj.weight": ("H", "d"), "a_proj.weight": ("H", "d"), "g_proj.weight": ("H", "d"), "A_log": ("H",),
            "D": ("H",), "dt_bias": ("H",), "o_norm.weight": ("dh",), "o_proj.weight": ("H", "dh", "dh")},
    "dn": {"b_proj.weight": ("H", "d"), "g_proj.weight": ("H", "d"), "o_norm.weight": ("dh",),
           "o_proj.weight": ("H", "dh", "dh")},
    "mamba2": {"dt_bias": ("H",), "A_log": ("H",), "norm.weight": ("H*dh",), "dt_proj.weight": ("H", "d"),
               "dt_proj.bias": ("H",), "g_proj.weight": ("H", "d"), "g_proj.bias": ("H",),
               "o_proj.weight": ("H", "dh", "dh")},
}


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_parameter_names_and_shapes_are_the_released_ones(kind):
    d, h, dh = 2048, 16, 128
    sizes = {"d": d, "H": h, "dh": dh, "H*dh": h * dh}
    cell = make_cell(kind, d, h, dh, device="meta")
    got = {n: tuple(p.shape) for n, p in cell.state_dict().items()}
    want = {n: tuple(sizes[s] for s in shape) for n, shape in SPEC_SHAPES[kind].items()}
    assert got == want
    assert len(got) == {"gdn": 8, "dn": 4, "mamba2": 8}[kind]


# docs/AHN.md §6 table (published numbers), the whole model's AHN parameters.
PUBLISHED_COUNTS = {
    "3b": (2048, 36, 16, {"gdn": 12_982_464, "dn": 11_801_088, "mamba2": 11_872_512}),
    "7b": (3584, 28, 28, {"gdn": 21_280_560, "dn": 18_468_352, "mamba2": 18_568_256}),
    "14b": (5120, 48, 40, {"gdn": 60_960_384, "dn": 51_124_224, "mamba2": 51_371_520}),
}


@pytest.mark.parametrize("size", list(PUBLISHED_COUNTS))
@pytest.mark.parametrize("kind", CELL_KINDS)
def test_parameter_counts_match_published(kind, size):
    d, layers, heads, counts = PUBLISHED_COUNTS[size]
    cell = make_cell(kind, d, heads, 128, device="meta")
    assert all(p.is_meta for p in cell.parameters())
    assert layers * sum(p.numel() for p in cell.parameters()) == counts[kind]
    assert layers * count_parameters(kind, d, heads) == counts[kind]


def test_state_size_matches_spec_cache_table():
    """docs/AHN.md §4: 36 MiB of fp32 state for Qwen2.5-3B (36 layers x 16 heads x 128 x 128)."""
    cell = make_cell("gdn", 2048, 16, device="meta")
    assert cell.state_shape(1) == (1, 16, 128, 128)
    assert 36 * cell.state_bytes(1) == 36 * 2**20
    assert cell.state_bytes(3) == 3 * cell.state_bytes(1)


def test_make_cell_kinds_and_error():
    assert isinstance(make_cell("gdn", D, H, DH), GatedDeltaNetCell)
    assert isinstance(make_cell("DeltaNet", D, H, DH), DeltaNetCell)
    assert isinstance(make_cell("Mamba2", D, H, DH), Mamba2Cell)
    with pytest.raises(ValueError, match=r"unknown AHN cell kind 'lstm'.*'gdn'.*'dn'.*'mamba2'"):
        make_cell("lstm", D, H, DH)


# -- initialisation (docs/AHN.md §7) -----------------------------------------------------------------------


def test_init_gdn():
    torch.manual_seed(0)
    cell = GatedDeltaNetCell(2048, 64, 16, initializer_range=0.05)
    assert torch.equal(cell.o_proj.weight, torch.zeros(64, 16, 16))
    for lin in (cell.b_proj, cell.a_proj, cell.g_proj):
        assert abs(lin.weight.std().item() - 0.05) < 0.002 and abs(lin.weight.mean().item()) < 0.002
    A = cell.A_log.exp()
    assert (A > 0).all() and (A < 16).all() and A.max() > 8  # U(0, 16)
    dt = F.softplus(cell.dt_bias)
    assert (dt >= 1e-3 * (1 - 1e-5)).all() and (dt <= 0.1 * (1 + 1e-5)).all()
    assert dt.min() < 0.01 < dt.max()  # log-uniform spread over two decades
    assert torch.equal(cell.D, torch.ones(64)) and torch.equal(cell.o_norm.weight, torch.ones(16))


def test_init_mamba2_and_dn():
    cell = Mamba2Cell(64, 5, 4)
    torch.testing.assert_close(cell.A_log, torch.log(torch.arange(1.0, 6.0)))
    assert torch.equal(cell.dt_bias, torch.ones(5)) and torch.equal(cell.norm.weight, torch.ones(20))
    assert torch.equal(cell.dt_proj.bias, torch.zeros(5)) and torch.equal(cell.g_proj.bias, torch.zeros(5))
    assert torch.equal(cell.o_proj.weight, torch.zeros(5, 4, 4))
    dn = DeltaNetCell(64, 5, 4)
    assert torch.equal(dn.o_proj.weight, torch.zeros(5, 4, 4)) and torch.equal(dn.o_norm.weight, torch.ones(4))


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_zero_output_map_gives_exact_zero_and_learns_through_it_first(kind):
    """docs/AHN.md §7.1: at init m == 0 exactly, and only o_proj gets a gradient at step 0."""
    torch.manual_seed(0)
    cell = make_cell(kind, D, H, DH)
    q, k, v, x = qkv(20, torch.float32)
    m, _ = cell(q, k, v, x, x)
    assert m.shape == (2, 20, H * DH) and torch.equal(m, torch.zeros_like(m))
    (m * torch.randn_like(m)).sum().backward()
    for name, p in cell.named_parameters():
        if name == "o_proj.weight":
            assert p.grad.abs().sum() > 0
        else:
            assert p.grad is None or torch.equal(p.grad, torch.zeros_like(p.grad)), name


# -- GroupLinear layout (docs/AHN.md §5.4) ------------------------------------------------------------------


def test_group_linear_layout_is_group_in_out():
    torch.manual_seed(0)
    gl = GroupLinear(3, 4, 5).double()
    with torch.no_grad():
        gl.weight.copy_(torch.randn(3, 4, 5))
    x = torch.randn(2, 7, 3 * 4, dtype=torch.float64)
    y = gl(x)
    assert y.shape == (2, 7, 15)
    for i in range(3):
        u_i = x[..., 4 * i : 4 * (i + 1)]
        torch.testing.assert_close(y[..., 5 * i : 5 * (i + 1)], u_i @ gl.weight[i])
    # the transposed reading (nn.Linear-style W[i] @ u_i on square blocks) gives something else
    sq = GroupLinear(3, 4, 4).double()
    with torch.no_grad():
        sq.weight.copy_(torch.randn(3, 4, 4))
    u = x.reshape(2, 7, 3, 4)
    transposed = torch.einsum("goi,btgi->btgo", sq.weight, u).reshape(2, 7, 12)
    assert not torch.allclose(sq(x), transposed, atol=1e-3)


# -- write gates ------------------------------------------------------------------------------------


def test_write_gates_numerics():
    _, _, _, x = qkv(5)
    gdn = randomized("gdn")
    gates = gdn.write_gates(x)
    torch.testing.assert_close(gates["beta"], torch.sigmoid(x @ gdn.b_proj.weight.T))
    want_g = -torch.exp(gdn.A_log) * torch.log1p(torch.exp(x @ gdn.a_proj.weight.T + gdn.dt_bias))
    torch.testing.assert_close(gates["g"], want_g)
    assert set(gates) == {"beta", "g"} and gates["beta"].shape == (2, 5, H)

    dn = randomized("dn")
    assert set(dn.write_gates(x)) == {"beta"}
    torch.testing.assert_close(dn.write_gates(x)["beta"], torch.sigmoid(x @ dn.b_proj.weight.T))

    m2 = randomized("mamba2")
    want_dt = torch.log1p(torch.exp(x @ m2.dt_proj.weight.T + m2.dt_proj.bias + m2.dt_bias))
    torch.testing.assert_close(m2.write_gates(x)["dt"], want_dt)


def test_write_gate_dtypes_and_bytes():
    x = torch.randn(1, 3, D, dtype=torch.bfloat16)
    gdn, dn, m2 = (randomized(k, torch.bfloat16) for k in CELL_KINDS)
    gates = gdn.write_gates(x)
    assert gates["beta"].dtype == torch.bfloat16 and gates["g"].dtype == torch.float32
    assert dn.write_gates(x)["beta"].dtype == torch.bfloat16
    assert m2.write_gates(x)["dt"].dtype == torch.float32
    assert gdn.gate_bytes_per_token_per_head(torch.bfloat16) == 6
    assert dn.gate_bytes_per_token_per_head(torch.bfloat16) == 2
    assert m2.gate_bytes_per_token_per_head(torch.bfloat16) == 4
    for cell in (gdn, dn, m2):  # what the cache stores is what the method says it stores
        stored = sum(t.element_size() for t in cell.write_gates(x).values())
        assert stored == cell.gate_bytes_per_token_per_head(torch.bfloat16)


# -- scan semantics ---------------------------------------------------------------------------------


def brute_delta(q, k, v, beta, g, state):
    """GDN/DN read-out from the closed matrix form, with the cell's normalisation written out."""
    def nrm(x):
        return x / torch.sqrt((x * x).sum(-1, keepdim=True) + 1e-6)

    q, k = nrm(q), nrm(k)
    Bsz, T = q.shape[:2]
    S = state.clone()
    out = torch.zeros_like(v)
    eye = torch.eye(DH, dtype=q.dtype)
    for b in range(Bsz):
        for h in range(H):
            for t in range(T):
                kt, vt = k[b, t, h][:, None], v[b, t, h][:, None]
                gamma = 1.0 if g is None else torch.exp(g[b, t, h])
                S[b, h] = gamma * (eye - beta[b, t, h] * kt @ kt.T) @ S[b, h] + beta[b, t, h] * kt @ vt.T
                out[b, t, h] = S[b, h].T @ q[b, t, h] / math.sqrt(DH)
    return out, S


@pytest.mark.parametrize("kind", ["gdn", "dn"])
@pytest.mark.parametrize("backend", ["recurrent", "chunked"])
def test_delta_cells_scan_against_closed_form(kind, backend):
    cell = randomized(kind)
    q, k, v, x = qkv(9)
    q = q * 7.0  # the read must not depend on the query norm
    gates = cell.write_gates(x)
    s0 = torch.randn(2, H, DH, DH, dtype=torch.float64)
    r, s = cell.scan(q, k, v, gates, s0, backend=backend)
    want_r, want_s = brute_delta(q, k, v, gates["beta"], gates.get("g"), s0)
    torch.testing.assert_close(r, want_r, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(s, want_s, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("backend", ["recurrent", "chunked"])
def test_mamba2_scan_equals_direct_mamba2_recurrence(backend):
    """docs/AHN.md §2.2 written directly: P[value,key] <- exp(dt a) P + dt v k^T; r = P q (unit-normalised q, k)."""
    cell = randomized("mamba2")
    q, k, v, x = qkv(11)
    dt = cell.write_gates(x)["dt"]
    P0 = torch.randn(2, H, DH, DH, dtype=torch.float64)  # [value, key]
    r, S = cell.scan(q, k, v, {"dt": dt}, P0.transpose(-1, -2), backend=backend)

    a = -torch.exp(cell.A_log)
    qn = q / q.norm(dim=-1, keepdim=True)
    kn = k / k.norm(dim=-1, keepdim=True)
    P = P0.clone()
    for t in range(11):
        for b in range(2):
            for h in range(H):
                P[b, h] = torch.exp(dt[b, t, h] * a[h]) * P[b, h] + dt[b, t, h] * torch.outer(v[b, t, h], kn[b, t, h])
                torch.testing.assert_close(r[b, t, h], P[b, h] @ qn[b, t, h], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(S, P.transpose(-1, -2), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("kind", CELL_KINDS)
def test_scan_in_pieces_equals_scan_at_once(kind, dtype):
    """Carrying the state across calls (decode, chunked prefill) equals one scan; pieces cross the 64 switch."""
    T = 150
    cell = randomized(kind, dtype)
    q, k, v, x = qkv(T, dtype)
    gates = cell.write_gates(x)
    r_all, s_all = cell.scan(q, k, v, gates, None)
    rs, state, start = [], None, 0
    for n in (1, 70, 1, 78):
        sl = slice(start, start + n)
        r, state = cell.scan(q[:, sl], k[:, sl], v[:, sl], {name: t[:, sl] for name, t in gates.items()}, state)
        rs.append(r)
        start += n
    # The two orders of evaluation differ by rounding only: a first-order bound is T recurrence steps, each an
    # O(dh) dot product, of one unit roundoff, relative to the largest entry (Mamba2 reads reach ~10). A state
    # carried wrongly across a call differs at O(1), far above it in either precision.
    eps = torch.finfo(dtype).eps
    for got, want in ((torch.cat(rs, 1), r_all), (state, s_all)):
        bound = T * DH * eps * want.abs().max().item()
        torch.testing.assert_close(got, want, atol=bound, rtol=0)
    assert state.dtype == dtype and state.shape == cell.state_shape(2)


def test_scan_rejects_unexpanded_kv():
    cell = randomized("gdn")
    q, k, v, x = qkv(3)
    with pytest.raises(ValueError, match="GQA-expanded"):
        cell.scan(q, k[:, :, :1], v, cell.write_gates(x))


# -- output -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gdn", "dn"])
def test_delta_output_numerics(kind):
    cell = randomized(kind)
    r = torch.randn(2, 4, H, DH, dtype=torch.float64) * 3
    x = torch.randn(2, 4, D, dtype=torch.float64)
    out = cell.output(r, x)
    gate = F.silu(x @ cell.g_proj.weight.T)  # [B,T,H]
    want = torch.zeros(2, 4, H * DH, dtype=torch.float64)
    for h in range(H):
        rh = r[:, :, h]
        u = rh / torch.sqrt((rh * rh).mean(-1, keepdim=True) + 1e-5) * cell.o_norm.weight * gate[..., h : h + 1]
        want[..., h * DH : (h + 1) * DH] = u @ cell.o_proj.weight[h]
    torch.testing.assert_close(out, want, atol=1e-12, rtol=1e-12)


def test_mamba2_output_numerics_joint_norm_after_gate():
    cell = randomized("mamba2")
    r = torch.randn(2, 4, H, DH, dtype=torch.float64)
    r[:, :, 0] *= 10  # heads of different scale: a joint norm and per-head norms then differ
    x = torch.randn(2, 4, D, dtype=torch.float64)
    out = cell.output(r, x)
    y = (r * F.silu(x @ cell.g_proj.weight.T + cell.g_proj.bias)[..., None]).reshape(2, 4, H * DH)
    u = y / torch.sqrt((y * y).mean(-1, keepdim=True) + 1e-5) * cell.norm.weight
    want = torch.cat([u[..., h * DH : (h + 1) * DH] @ cell.o_proj.weight[h] for h in range(H)], -1)
    torch.testing.assert_close(out, want, atol=1e-12, rtol=1e-12)
    y_h = y.reshape(2, 4, H, DH)
    per_head = (y_h / torch.sqrt((y_h * y_h).mean(-1, keepdim=True) + 1e-5)).reshape(2, 4, -1) * cell.norm.weight
    per_head = torch.cat([per_head[..., h * DH : (h + 1) * DH] @ cell.o_proj.weight[h] for h in range(H)], -1)
    assert not torch.allclose(out, per_head, atol=1e-3)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_bf16_cell_runs_and_keeps_dtypes(kind):
    ref = randomized(kind, torch.float32)
    cell = copy.deepcopy(ref).bfloat16()
    q, k, v, x = (t.bfloat16() for t in qkv(70, torch.float32))
    m, s = cell(q, k, v, x, x)
    assert m.dtype == torch.bfloat16 and s.dtype == torch.float32 and torch.isfinite(m.float()).all()
    m32, s32 = ref(q.float(), k.float(), v.float(), x.float(), x.float())
    assert (m.float() - m32).norm() / m32.norm() < 0.05
    assert (s - s32).norm() / s32.norm() < 0.05


def test_a_cell_missing_part_of_the_api_cannot_be_built():
    from ahn.cells import AHNCell

    class NoScan(AHNCell):
        def write_gates_from(self, proj):
            return {}

        def gate_bytes_per_token_per_head(self, dtype):
            return 0

        def output_from(self, r, proj, dtype):
            return r

    with pytest.raises(TypeError, match="scan"):
        NoScan(64, 2, 32)


def test_mamba2_init_options_set_decay_and_write_strength():
    from ahn.cells import Mamba2Cell, init_options

    cell = Mamba2Cell(hidden_size=32, num_heads=4, head_dim=8)
    cell.reset_parameters(dt_bias=-6.0, A_scale=0.25)
    assert torch.allclose(cell.A_log.exp(), torch.tensor([0.25, 0.5, 0.75, 1.0]))
    assert torch.all(cell.dt_bias == -6.0) and torch.all(cell.o_proj.weight == 0)
    assert init_options("mamba2") == ("dt_bias", "A_scale") and init_options("dn") == ()
    with pytest.raises(ValueError, match="A_scale > 0"):
        cell.reset_parameters(A_scale=0.0)


# -- the compiled pieces (long inference chunks on CUDA; forced here on the CPU) ------------------------------


def test_fused_pieces_are_taken_only_for_long_inference_chunks(monkeypatch):
    from ahn.cells import FUSED_MIN_TOKENS, fused, l2norm_delta
    from baselines import fused_layers

    x = torch.zeros(1, FUSED_MIN_TOKENS + 1, H, DH)
    monkeypatch.setenv(fused_layers.ENV, "1")  # the default: CUDA only
    with torch.no_grad():
        assert fused(l2norm_delta, x, x.shape[1]) is l2norm_delta
    monkeypatch.setenv(fused_layers.ENV, "force")
    with torch.no_grad():
        assert fused(l2norm_delta, x, x.shape[1]) is fused_layers.compiled_or_own(l2norm_delta)
        assert fused(l2norm_delta, x, FUSED_MIN_TOKENS) is l2norm_delta  # a decode step: plain
    assert fused(l2norm_delta, x, x.shape[1]) is l2norm_delta  # gradients (training): plain
    monkeypatch.setenv(fused_layers.ENV, "0")
    with torch.no_grad():
        assert fused(l2norm_delta, x, x.shape[1]) is l2norm_delta


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_fused_scan_and_output_equal_the_plain_ones_in_fp64(kind, monkeypatch):
    """Over FUSED_MIN_TOKENS tokens with fusion forced, a cell's scan and output run their norms compiled by
    inductor (on the CPU here) and equal the plain functions to fp64 rounding: the compiled kernels may sum a
    norm's squares in another order (~1e-16 relative), which the recurrence carries over 80 tokens; 1e-12 of
    the largest value bounds that, while a dropped weight, gate or epsilon differs by far more."""
    from baselines import fused_layers

    compiled = []
    own = fused_layers.compiled_or_own
    monkeypatch.setattr(fused_layers, "compiled_or_own", lambda fn: compiled.append(fn.__name__) or own(fn))
    cell = randomized(kind)
    T = 80
    q, k, v, x = qkv(T)
    gates = cell.write_gates(x)
    with torch.no_grad():
        ref_r, ref_state = cell.scan(q, k, v, gates)
        ref_out = cell.output(ref_r, x)
        assert compiled == []
        monkeypatch.setenv(fused_layers.ENV, "force")
        r, state = cell.scan(q, k, v, gates)
        out = cell.output(r, x)
    want = {"gdn": ["l2norm_delta_contiguous", "delta_output_norm"],
            "dn": ["l2norm_delta_contiguous", "delta_output_norm"], "mamba2": ["mamba2_output_norm"]}[kind]
    assert compiled == want
    for got, ref in ((r, ref_r), (state, ref_state), (out, ref_out)):
        assert (got - ref).abs().max() <= 1e-12 * ref.abs().max()
