"""fla fast path vs the PyTorch reference on a GPU: all three cells, forward and backward, short and long T.

Skipped without CUDA or without fla (``pip install 'ahn-harness[gpu]'``). fla is imported only inside the
tests, never at collection, so the CPU suite never touches it.
"""

from __future__ import annotations

import pytest
import torch

from ahn.cells import CELL_KINDS, make_cell
from ahn.ops import delta_rule, fla_backend, resolve_backend, scalar_decay

pytestmark = pytest.mark.gpu

TS = [1, 37, 64, 65, 1000]
D, H, DH, B = 256, 4, 128, 2
FWD_TOL, BWD_TOL = 2e-2, 4e-2  # relative Frobenius error; bf16 inputs, fp32 reference on the same bf16 inputs


@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("fla.ops.gated_delta_rule", reason="needs fla (pip install 'ahn-harness[gpu]')")
    return torch.device("cuda")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def setup(kind: str, T: int, device, seed: int = 0):
    torch.manual_seed(seed)
    cell = make_cell(kind, D, H, DH).to(device)
    with torch.no_grad():
        cell.o_proj.weight.normal_(0, 0.05)  # non-zero output map so the whole output path is compared
        for name, p in cell.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    cell = cell.bfloat16()
    q, k, v = (torch.randn(B, T, H, DH, device=device, dtype=torch.bfloat16) for _ in range(3))
    x = torch.randn(B, T, D, device=device, dtype=torch.bfloat16)
    state = torch.randn(B, H, DH, DH, device=device) * 0.1
    return cell, q, k, v, x, state


@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("kind", CELL_KINDS)
def test_forward_matches_reference(cuda, kind, T):
    cell, q, k, v, x, s0 = setup(kind, T, cuda)
    with torch.no_grad():  # no grad: fused recurrent kernel for T <= 64, chunk kernel beyond
        gates = cell.write_gates(x)
        r_f, s_f = cell.scan(q, k, v, gates, s0, backend="fla")
        r_r, s_r = cell.scan(q, k, v, gates, s0, backend="reference")
        m_f, m_r = cell.output(r_f, x), cell.output(r_r, x)
    assert r_f.dtype == r_r.dtype == torch.bfloat16 and s_f.dtype == s_r.dtype == torch.float32
    assert rel(r_f, r_r) < FWD_TOL, f"read-out {rel(r_f, r_r):.3g}"
    assert rel(s_f, s_r) < FWD_TOL, f"state {rel(s_f, s_r):.3g}"
    assert rel(m_f, m_r) < FWD_TOL, f"output {rel(m_f, m_r):.3g}"


@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("kind", CELL_KINDS)
def test_backward_matches_reference(cuda, kind, T):
    if kind != "dn" and fla_backend.gated_backward_error():
        pytest.skip(f"fla cannot differentiate gated kernels here: {fla_backend.gated_backward_error()}")
    results = {}
    for backend in ("fla", "reference"):
        cell, q, k, v, x, s0 = setup(kind, T, cuda)
        leaves = [t.requires_grad_() for t in (q, k, v, x, s0)]
        m, s = cell(q, k, v, x, x, state=s0, backend=backend)
        g = torch.Generator(device=cuda).manual_seed(1)
        w_m = torch.randn(m.shape, device=cuda, generator=g, dtype=m.dtype)
        w_s = torch.randn(s.shape, device=cuda, generator=g)
        ((m.float() * w_m.float()).sum() + (s * w_s).sum() * 0.1).backward()
        results[backend] = {"m": m.detach(), "s": s.detach(),
                            **{n: t.grad for n, t in zip(("q", "k", "v", "x", "s0"), leaves)},
                            **{f"p.{n}": p.grad for n, p in cell.named_parameters() if p.grad is not None}}
    fla_r, ref_r = results["fla"], results["reference"]
    assert fla_r.keys() == ref_r.keys()
    errors = {n: rel(fla_r[n], ref_r[n]) for n in ref_r if ref_r[n].abs().sum() > 0}
    bad = {n: e for n, e in errors.items() if e > BWD_TOL}
    assert not bad, f"relative errors over {BWD_TOL}: {bad}"


def test_auto_dispatch_picks_fla_on_cuda(cuda):
    q, k, v = (torch.randn(1, 80, 2, 64, device=cuda, dtype=torch.bfloat16) for _ in range(3))
    beta = torch.rand(1, 80, 2, device=cuda, dtype=torch.bfloat16)
    g = -torch.rand(1, 80, 2, device=cuda)
    assert resolve_backend("auto", "delta_rule", q, k, v, beta, g) == "fla"
    assert resolve_backend("auto", "scalar_decay", q, k, v, g) == "fla"
    assert resolve_backend("auto", "delta_rule", q.double(), k.double(), v.double(), beta, g) == "chunked"


def test_gated_training_falls_back_where_fla_refuses_gradients(cuda):
    """Where fla 0.6.0 refuses gated backward (Hopper + Triton < 3.7.1), auto trains on the reference."""
    if not fla_backend.gated_backward_error():
        pytest.skip("fla differentiates gated kernels here")
    cell, q, k, v, x, s0 = setup("gdn", 80, cuda)
    q.requires_grad_()
    gates = cell.write_gates(x)
    assert resolve_backend("auto", "delta_rule", q, k, v, gates["beta"], gates["g"]) == "chunked"
    assert resolve_backend("auto", "delta_rule", q, k, v, gates["beta"], None) == "fla"  # DN is fine
    with torch.no_grad():
        assert resolve_backend("auto", "delta_rule", q, k, v, gates["beta"], gates["g"]) == "fla"
    with pytest.raises(RuntimeError, match="#640"):
        cell.scan(q, k, v, gates, s0, backend="fla")
    r, _ = cell.scan(q, k, v, gates, s0, backend="auto")
    r.float().sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


@pytest.mark.parametrize("T", [37, 1000])
def test_fp32_ops_without_grad(cuda, T):
    """fp32 inputs (no grad) through fla: fused recurrent delta rule for any T, simple GLA as usual."""
    torch.manual_seed(0)
    q = torch.randn(1, T, 2, 64, device=cuda)
    k = torch.nn.functional.normalize(torch.randn(1, T, 2, 64, device=cuda), dim=-1)
    v = torch.randn(1, T, 2, 64, device=cuda)
    beta, g = torch.rand(1, T, 2, device=cuda), -torch.rand(1, T, 2, device=cuda) * 0.1
    with torch.no_grad():
        for a, b in ((delta_rule(q, k, v, beta, g, backend="fla"), delta_rule(q, k, v, beta, g, backend="reference")),
                     (delta_rule(q, k, v, beta, None, backend="fla"), delta_rule(q, k, v, beta, None, backend="reference")),
                     (scalar_decay(q, k, v, g, backend="fla"), scalar_decay(q, k, v, g, backend="reference"))):
            assert rel(a[0], b[0]) < 5e-3 and rel(a[1], b[1]) < 5e-3  # fla's chunk kernels use TF32 dots


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("kind", CELL_KINDS)
def test_decode_graphs_equal_eager_decode(cuda, kind, backend):
    # The graph replays the eager step's kernels: a prompt beyond sinks + window, then greedy decode with the
    # graphs on and off must give the same logits (bf16 model, random output maps so the memory really acts).
    from baselines import attach, make_method
    from baselines.engine import decode_step, prefill
    from tests.tiny_models import randomize_ahn, tiny_model

    model = tiny_model(layers=3, dtype=torch.bfloat16).to(cuda).eval()
    ids = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(3)).to(cuda)
    logits = {}
    for graphs in (False, True):
        method = make_method(f"ahn-{kind}", sinks=2, window=16, backend=backend, decode_graphs=graphs)
        torch.manual_seed(0)
        with attach(model, method):
            randomize_ahn(method)
            cache = method.new_cache(model)
            out = [prefill(model, method, cache, ids, chunk_size=16)]
            for _ in range(6):
                out.append(decode_step(model, method, cache, out[-1].argmax(-1)))
            logits[graphs] = torch.stack(out)
            captures = method.graphs.captures
        assert captures == (6 if graphs else 0)  # per layer: the gates and the memory step, captured once
    assert torch.equal(logits[True].argmax(-1), logits[False].argmax(-1))
    assert (logits[True] - logits[False]).abs().max().item() <= 1e-2 * logits[False].abs().max().item()


def test_graph_cache_recaptures_when_parameters_move(cuda):
    from ahn.decode_graphs import GraphCache

    w = torch.randn(4, 4, device=cuda)
    cache = GraphCache()
    with torch.no_grad():
        x = torch.randn(2, 4, device=cuda)
        (y,) = cache.run("mul", lambda t: (t @ w,), (x,), [w])
        assert torch.allclose(y, x @ w) and cache.captures == 1
        x2 = torch.randn(2, 4, device=cuda)
        (y2,) = cache.run("mul", lambda t: (t @ w,), (x2,), [w])
        assert torch.allclose(y2, x2 @ w) and cache.captures == 1  # replayed: the new input was copied in
        assert not torch.equal(y, y2)  # the first output was cloned out, not overwritten by the replay
        w2 = torch.randn(4, 4, device=cuda)
        (y3,) = cache.run("mul", lambda t: (t @ w2,), (x2,), [w2])
        assert torch.allclose(y3, x2 @ w2) and cache.captures == 2


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_chunk_graphs_equal_the_eager_memory_update(cuda, kind, monkeypatch):
    """A prefill whose chunks evict 256 tokens each, with the memory update's chunk graphs on and off: the graphs
    replay the eager update's kernels on copies of its inputs, so logits and states are equal bit for bit. Each
    layer captures (and replays) on its second full chunk and replays on the later ones."""
    from ahn import chunk_graphs
    from baselines import attach, make_method
    from baselines.engine import prefill
    from tests.tiny_models import randomize_ahn, tiny_model

    model = tiny_model(layers=3, dtype=torch.bfloat16).to(cuda).eval()
    ids = torch.randint(0, 300, (1, 8 + 256 * 6), generator=torch.Generator().manual_seed(3)).to(cuda)
    results = {}
    for setting in ("0", "1"):
        monkeypatch.setenv(chunk_graphs.ENV_SWITCH, setting)
        method = make_method(f"ahn-{kind}", sinks=8, window=256)
        torch.manual_seed(0)
        with attach(model, method):
            randomize_ahn(method)
            cache = method.new_cache(model)
            logits = prefill(model, method, cache, ids, chunk_size=256)
            results[setting] = (logits, [layer.memory["state"] for layer in cache.layers])
            counts = (method.chunk_graphs.captures, method.chunk_graphs.replays)
        # per layer: the chunk at 256 evicts 248 tokens into no state yet (eager); from 512 each full chunk
        # evicts 256: met once at 512 (eager), captured at 768 and replayed there, at 1,024 and at 1,280; the
        # last 8 tokens stay eager
        assert counts == ((3, 3 * 3) if setting == "1" else (0, 0))
    assert torch.equal(results["1"][0], results["0"][0])
    for graphed, eager in zip(results["1"][1], results["0"][1], strict=True):
        assert torch.equal(graphed, eager)
