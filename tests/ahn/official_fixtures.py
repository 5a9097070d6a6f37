"""The official AHN code's logits on random weights (``../shared/fixtures/official-ahn/``), read for tests.

Shared by the CPU parity test (``test_official_parity.py``) and its GPU twin (``test_official_parity_gpu.py``).
What the files are and how they were made: the fixtures' README; what parity they show: ``docs/PARITY.md``.
The root is ``$AHN_HARNESS_FIXTURES`` when set (a machine without ``../shared``), else ``../shared/fixtures``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tests.conftest import SHARED_FIXTURES

CASE = "official-ahn/qwen2-s32-w480"
CELLS = ("gdn", "dn", "mamba2")
OFFICIAL_COMMIT = "3d2d174"

# Bounds of the fixtures' README, per position past sinks + window (docs/PARITY.md says where they come from).
FP32_BOUND = {"gdn": 1e-4, "dn": 1e-4, "mamba2": 2e-2}  # max relative error against an official fp32 run
BF16_MEDIAN = 0.035  # median relative error against an official run in bf16 (or of a bf16 run)
BF16_ARGMAX = 0.92  # share of positions whose argmax agrees


@dataclass(frozen=True)
class Oracle:
    """One official logits file: logits [P, V] at `positions` of the prompt `ids` [T]."""

    name: str
    ids: torch.Tensor
    positions: torch.Tensor
    logits: torch.Tensor
    fp32: bool


@dataclass(frozen=True)
class OfficialCase:
    cell: str
    base: Path
    checkpoint: Path
    sinks: int
    window: int
    oracles: tuple[Oracle, ...]

    @property
    def ids(self) -> torch.Tensor:
        """The longest prompt; every oracle's prompt is a prefix of it."""
        return max((o.ids for o in self.oracles), key=len)


def case_root() -> Path:
    root = SHARED_FIXTURES / CASE
    if not root.is_dir():
        pytest.skip(f"official AHN fixtures absent: no {root} (set AHN_HARNESS_FIXTURES to the fixtures folder)")
    return root


def load_case(cell: str) -> OfficialCase:
    root = case_root()
    folder = root / f"ahn-{cell}"
    meta = json.loads((folder / "official_meta.json").read_text())
    assert meta["cell"] == cell and meta["made_with"]["official_ahn_commit"] == OFFICIAL_COMMIT, meta
    oracles = []
    for name in sorted(meta["files"]):
        data = load_file(str(folder / name))
        oracles.append(Oracle(name=name, ids=data["ids"], positions=data["positions"], logits=data["logits"],
                              fp32=data["logits"].dtype == torch.float32))
    case = OfficialCase(cell=cell, base=root / "base", checkpoint=folder, sinks=int(meta["sinks"]),
                        window=int(meta["window"]), oracles=tuple(oracles))
    longest = case.ids
    for o in oracles:  # one forward over the longest prompt serves every file (causal model)
        assert torch.equal(o.ids, longest[: len(o.ids)]), f"{cell}/{o.name}: prompt is not a prefix of the longest"
    return case


@contextlib.contextmanager
def official_model(case: OfficialCase, dtype: torch.dtype, device: str | torch.device = "cpu",
                   backend: str = "auto") -> Iterator[tuple[nn.Module, object]]:
    """The fixture base in `dtype` with the fixture AHN checkpoint loaded strictly, attached."""
    from transformers import AutoModelForCausalLM

    import ahn.method  # noqa: F401  (registers the AHN methods)
    from ahn.checkpoint import load_ahn_state_dict
    from baselines import attach, make_method

    # from_pretrained(dtype=...) keeps RoPE's inv_freq in fp32, as the official run did
    model = AutoModelForCausalLM.from_pretrained(case.base, dtype=dtype, attn_implementation="sdpa")
    model.to(device).eval()
    assert all(b.dtype == torch.float32 for n, b in model.named_buffers() if "inv_freq" in n)
    method = make_method(f"ahn-{case.cell}", sinks=case.sinks, window=case.window)
    method.backend = backend
    with attach(model, method):
        report = load_ahn_state_dict(case.checkpoint, model, strict=True)
        assert report.loaded and not report.missing and not report.unexpected
        yield model, method


@torch.no_grad()
def one_shot_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits [T, V] at every position: one stateless pass (no cache), sinks + window + memory per position."""
    out = model(input_ids=ids[None].to(model.device), use_cache=False)
    return out.logits[0].double().cpu()


def relative_errors(ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """‖a − b‖ / ‖b‖ per position (row), in fp64."""
    a, b = ours.double().cpu(), theirs.double().cpu()
    return (a - b).norm(dim=-1) / b.norm(dim=-1)


def past_window(oracle: Oracle, case: OfficialCase) -> torch.Tensor:
    """Row indices of the oracle's positions whose logits depend on the memory (t >= sinks + window)."""
    return torch.nonzero(oracle.positions >= case.sinks + case.window).flatten()


@torch.no_grad()
def static_decode_logits(model: nn.Module, method, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Prefill ``ids[:start]``, then decode ``ids[start:]`` through the static decoder (fixed buffers; one CUDA
    graph per step on a GPU), feeding the prompt's own tokens: logits [len(ids) - start, V] at positions
    ``start ..``."""
    from baselines.engine import prefill
    from baselines.static_decode import StaticDecoder

    ids = ids.to(model.device)
    cache = method.new_cache(model)
    prefill(model, method, cache, ids[None, :start], chunk_size=start)
    decoder = StaticDecoder(model, method, batch=1, max_tokens=len(ids) + 1)
    decoder.capture()
    decoder.load(0, cache, ids[:start], int(ids[start]))
    rows = []
    for t in range(start, len(ids)):
        decoder.tok[0] = ids[t]  # teacher forcing: the prompt's token, not the greedy pick
        decoder.step()
        rows.append(decoder.logits[0].double().cpu())
    return torch.stack(rows)
