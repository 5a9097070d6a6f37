"""bench/check_batched_ids.py's verdict, on hand-made logits: where two runs' picks part, the rounding noise
before it and the margin there, each relative to the largest |logit| (the GPU run applies the same function to
the 3B shape's logits)."""

from __future__ import annotations

from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def _parting():
    from bench.check_batched_ids import parting

    return parting


def _runs(gap_alone: float, gap_batched: float, wobble: float):
    """Three steps over 3 tokens: token 0 leads at steps 0-1 (the batched run's token 1 off by `wobble` there);
    at step 2 the alone run picks 1 over 2 by `gap_alone`, the batched run 2 over 1 by `gap_batched` (a
    negative gap: it picks 1 too)."""
    la = torch.tensor([[2.0, 1.0, 0.0], [2.0, 1.0, 0.0], [0.0, 4.0, 4.0 - gap_alone]])
    lb = la.clone()
    lb[:2, 1] += wobble
    lb[2] = torch.tensor([0.0, 4.0 - gap_batched, 4.0])
    return (lb.argmax(-1), lb), (la.argmax(-1), la)


def test_a_parting_within_the_noise_before_it_is_a_near_tie() -> None:
    rec = _parting()(*_runs(gap_alone=0.01, gap_batched=0.02, wobble=0.04))
    assert rec["first_differing_step"] == 2 and rec["equal_steps"] == 2
    # steps 0-1 only (the parting step's own change is not noise), whose largest |logit| is 2
    assert abs(rec["noise_rel"] - 0.04 / 2) < 1e-7
    assert abs(rec["margin_alone_rel"] - 0.01 / 2) < 1e-7 and abs(rec["margin_batched_rel"] - 0.02 / 2) < 1e-7
    assert rec["near_tie"] is True


def test_a_parting_far_above_the_noise_before_it_is_not() -> None:
    rec = _parting()(*_runs(gap_alone=1.0, gap_batched=0.5, wobble=1e-3))
    assert rec["first_differing_step"] == 2
    assert abs(rec["noise_rel"] - 1e-3 / 2) < 1e-7  # before step 2 the largest |logit| is 2
    assert rec["near_tie"] is False


def test_equal_picks_have_no_parting_and_a_parting_at_once_no_verdict() -> None:
    rec = _parting()(*_runs(gap_alone=0.5, gap_batched=-0.5, wobble=0.0))
    assert rec["first_differing_step"] is None and rec["equal_steps"] == 3 and "near_tie" not in rec
    assert abs(rec["noise_rel"] - 0.5 / 4) < 1e-7  # step 2's logits moved by 0.5 without changing the pick
    la, lb = torch.tensor([[1.0, 0.5]]), torch.tensor([[0.5, 1.0]])
    rec = _parting()((lb.argmax(-1), lb), (la.argmax(-1), la))
    assert rec["first_differing_step"] == 0 and rec["noise_rel"] is None and rec["near_tie"] is None
