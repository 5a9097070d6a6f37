"""The random window/sink sampler of the training recipe (docs/AHN.md §8.4)."""

from __future__ import annotations

import pytest

from ahn.train.config import WindowConfig
from ahn.train.windows import (
    PAPER_SINK_CANDIDATES,
    PAPER_WINDOW_CANDIDATES,
    WindowError,
    WindowSampler,
    allowed_sinks,
    allowed_totals,
)


def test_spec_examples():
    assert allowed_totals(24576) == [4096, 8192]
    assert allowed_totals(300) == [64, 128, 256]
    assert PAPER_WINDOW_CANDIDATES == (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
    assert PAPER_SINK_CANDIDATES == (0, 32, 64, 128, 512, 2048, 4096)


def test_filter_is_strict_at_both_ends():
    assert 256 not in allowed_totals(2048)  # W_tot must exceed L/8 = 256
    assert allowed_totals(2048) == [512, 1024]
    assert allowed_totals(256) == [64, 128]  # W_tot < L strictly
    assert allowed_sinks(64) == [0, 32]
    assert allowed_sinks(8192) == [0, 32, 64, 128, 512, 2048, 4096]


@pytest.mark.parametrize("length", [300, 24576, 4000, 65535])
def test_draws_obey_filters_and_cover_candidates(length):
    sampler = WindowSampler(WindowConfig(), seed=3)
    draws = [sampler.draw(length, i) for i in range(400)]
    totals = {d.total for d in draws}
    assert totals == set(allowed_totals(length))
    for d in draws:
        assert d.window == d.total - d.sinks and d.window >= 1
        assert 2 * d.sinks <= d.total
        assert d.sinks in PAPER_SINK_CANDIDATES
    assert {d.sinks for d in draws if d.total == max(totals)} == set(allowed_sinks(max(totals)))


def test_draws_are_seeded_per_index():
    a, b = WindowSampler(WindowConfig(), seed=0), WindowSampler(WindowConfig(), seed=0)
    assert [a.draw(24576, i) for i in range(50)] == [b.draw(24576, i) for i in range(50)]
    c = WindowSampler(WindowConfig(), seed=1)
    assert [a.draw(24576, i) for i in range(50)] != [c.draw(24576, i) for i in range(50)]
    assert a.draw(24576, 7) == a.draw(24576, 7)  # no hidden state: order of calls does not matter


def test_no_candidate_is_a_clear_error():
    sampler = WindowSampler(WindowConfig(), seed=0)
    with pytest.raises(WindowError, match=r"L=32.*window_candidates"):
        sampler.draw(32, 0)
    with pytest.raises(WindowError, match="no window candidate"):
        WindowSampler(WindowConfig(window_candidates=[4096]), seed=0).draw(2048, 0)


def test_fixed_window():
    spec = WindowConfig(mode="fixed", sinks=32, window=224)
    d = WindowSampler(spec).draw(1024, 5)
    assert (d.sinks, d.window, d.total) == (32, 224, 256)
    with pytest.raises(WindowError, match="not smaller than the sequence length L=256"):
        WindowSampler(spec).draw(256, 0)


def test_custom_candidates_for_the_tiny_world():
    spec = WindowConfig(window_candidates=[64, 128, 256, 512], sink_candidates=[0, 16, 32, 64])
    draws = {WindowSampler(spec, 0).draw(1024, i) for i in range(200)}
    assert {d.total for d in draws} == {256, 512}
