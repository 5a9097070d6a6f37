"""bench/bench_throughput.py end to end in its tiny CPU mode (a 2-layer random model, 2,048-token prompts).

The GPU run is the same code at the 3B shape; here the script must time the three configurations of each
workload and find the batched predictions equal to the same samples decoded alone. The tiny model is seeded;
the top two logits of its 27 greedy picks here (3 samples, prefill + 8 steps) are at least 1.4e-4 apart, against
differences of ~1e-7 between the two decoders in fp32, so equality holds on any CPU; a batch that mixed rows
(another sample's tokens) fails it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~36 s: batched decode equals alone in tests/harness/test_runner_batched.py
def test_bench_throughput_tiny(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "bench.bench_throughput", "--tiny", "--out", str(tmp_path), "--samples", "3",
           "--batch", "3", "--baseline-samples", "2", "--length", "2048", "--new-tokens", "8", "--sinks", "4",
           "--window", "64", "--chunk", "128", "--off-chunk", "256", "--profile-host", "1"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "throughput.json").read_text())
    runs = {(r["workload"], r["decode"], r["batch"]): r["samples"] for r in doc["rows"]}
    assert runs == {(w, d, b): n for w in ("lveval-128k", "infbench-sum")
                    for d, b, n in (("static", 3, 3), ("static", 1, 3), ("eager", 1, 2))}
    for r in doc["rows"]:  # the off run at its own chunk; a sample's time split three ways, the parts its wall
        assert r["chunk"] == (256 if r["decode"] == "eager" else 128), r
        assert r["prefill_s_median"] > 0 and r["decode_share_s_median"] > 0, r
        assert r["prefill_s_median"] + r["decode_share_s_median"] <= r["steady_s"] / r["samples"] * 1.5, r
    for check in doc["batched_vs_alone"]:
        assert check["compared"] == 3 and check["equal"] == 3, check
    assert "| lveval-128k | 3 | 3 | 3 | none |" in (tmp_path / "throughput.md").read_text()
    profile = (tmp_path / "host_profile.txt").read_text()  # the profiled run: the harness's own functions in it
    assert all(f"({name})" in profile for name in ("generate_many", "prefill", "_prepared_groups")), profile[:2000]


def test_compare_tells_a_changed_token_from_an_earlier_stop() -> None:
    from bench.bench_throughput import compare

    batched = {"a" * 64: [5, 6, 7, 8], "b" * 64: [5, 6, 9, 8], "c" * 64: [5, 6], "d" * 64: None}
    alone = {"a" * 64: [5, 6, 7, 8], "b" * 64: [5, 6, 7, 8], "c" * 64: [5, 6, 7, 8], "d" * 64: [], "e" * 64: [1]}
    got = compare(batched, alone)
    assert got["compared"] == 4 and got["equal"] == 2  # "a" equal; "d": no prediction either way
    assert got["first_difference"] == {"b" * 12: 2, "c" * 12: 2}
    assert got["lengths"] == {"b" * 12: [4, 4], "c" * 12: [2, 4]}  # "c": a prefix, stopped earlier batched
