"""passkey_k*: k labelled pass keys, one asked, all before the clear tail; answers re-read from the prompt text."""

from __future__ import annotations

import re

import pytest

from tasks.synthetic import generate, load
from tasks.synthetic.multi_needle import CLEAR_CHARS, KS, TASK_NAMES, passkey_k, slot_depths

NEEDLE_RE = re.compile(r"The pass key of (\w+) is (\d{5})\. Remember it\. \2 is the pass key of \1\.\n")


def parse(prompt: str) -> tuple[dict[str, str], str, list[int]]:
    """Every needle's name → key, the asked name, and each needle's character offset (from the text only)."""
    found = list(NEEDLE_RE.finditer(prompt))
    asked = re.search(r"What is the pass key of (\w+)\?\n\nThe pass key is$", prompt)
    assert asked is not None
    return {m.group(1): m.group(2) for m in found}, asked.group(1), [m.start() for m in found]


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", [4096, 16384])
def test_k_distinct_needles_and_the_asked_key_is_the_answer(k, n):
    for s in load(f"passkey_k{k}", [n], 6, seed=3):
        pairs, asked, offsets = parse(s.prompt)
        assert len(offsets) == k and len(pairs) == k  # k needles with k distinct names
        assert len(set(pairs.values())) == k  # ... and k distinct keys
        assert s.answers == [pairs[asked]]
        assert s.extra["names"][s.extra["asked"]] == asked
        assert 0.99 * n <= len(s.prompt) <= n
        # byte counter: token offsets are byte offsets; the asked needle's comes first
        assert sorted(s.extra["needle_token_offsets"]) == offsets
        assert s.prompt[s.extra["needle_token_offset"]:].startswith(f"The pass key of {asked} is ")
        assert s.max_new_tokens == 6


@pytest.mark.parametrize("k", KS)
def test_every_needle_lies_before_the_clear_tail(k):
    for n in (4096, 16384, 32768):
        for depth in (0.0, 0.5, 1.0):
            g = generate(f"passkey_k{k}", n, depth=depth, seed=11)
            last_end = max(o + len(NEEDLE_RE.match(g.prompt, o).group(0)) for o in g.needle_token_offsets)
            # the last needle ends at least CLEAR_CHARS minus one noise line (its rounding) before the context end
            assert g.context_token_end - last_end >= CLEAR_CHARS - 90, (k, n, depth)
            # far from the tail, needles are spread: the first sits in the first slot, at most 1/k + a line in
            assert g.needle_token_offsets[0] >= g.context_token_start
            assert min(g.needle_token_offsets) - g.context_token_start <= (n / k) + 100


def test_slots_spread_evenly_and_depth_moves_within_a_slot():
    assert slot_depths(4, 0.0, 1.0) == [0.0, 0.25, 0.5, 0.75]
    assert slot_depths(4, 0.5, 0.8) == pytest.approx([0.1, 0.3, 0.5, 0.7])
    a = generate("passkey_k8", 16384, depth=0.0, seed=5)
    b = generate("passkey_k8", 16384, depth=0.9, seed=5)
    assert a.answers == b.answers and a.extra["names"] == b.extra["names"]  # same draw, other layout
    assert all(y > x for x, y in zip(a.extra["needle_depths"], b.extra["needle_depths"]))


def test_asked_index_varies_over_samples_and_seeds():
    asked = {s.extra["asked"] for s in load("passkey_k4", [4096], 32, seed=0)}
    assert len(asked) == 4


def test_scored_like_passkey():
    from tasks.scoring import score

    (s,) = load("passkey_k2", [4096], 1, seed=2)
    pairs, asked, _ = parse(s.prompt)
    other = next(v for name, v in pairs.items() if name != asked)
    assert score(s.task, f" {pairs[asked]}.", s) == 1.0
    assert score(s.task, f" {other}", s) == 0.0  # the other needle's key is wrong


def test_bad_k_and_too_short_target():
    with pytest.raises(ValueError, match="k must be one of 1, 2, 4, 8, 16"):
        passkey_k(3, 0, 0.5)
    with pytest.raises(ValueError, match="below the smallest prompt"):
        generate("passkey_k16", 1024)
    assert set(TASK_NAMES) == {f"passkey_k{k}" for k in KS}
