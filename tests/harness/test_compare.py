"""The regression gate: drops beyond the tolerance fail (significant: a regression; not significant: insufficient
samples, never a pass); drops within it pass."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from harness.compare import compare_runs as _compare_runs
from harness.compare import main as _main
from harness.provenance import make_manifest
from harness.store import RunError, RunStore

N = 50
U = "--allow-unverified-scores"  # write_run's records carry scores without predictions to recompute them from
compare_runs = partial(_compare_runs, allow_unverified_scores=True)


def main(argv: list[str]) -> int:
    return _main([U, *argv])


def write_run(path: Path, scores: dict[tuple[str, str], list[float | None]], name: str = "m") -> Path:
    """A run folder from {(task, level): per-sample scores}; None means a failed sample."""
    with RunStore.create_or_resume(path, make_manifest({"preset": name}, argv=["t"])) as store:
        for (task, level), values in scores.items():
            for i, s in enumerate(values):
                store.append({"key": f"{task}|{level}|{i}", "task": task, "level": level, "id": str(i),
                              "score": s, "status": "ok" if s is not None else "failed"})
    return path


def baseline() -> dict[tuple[str, str], list[float | None]]:
    rng = np.random.default_rng(0)
    return {
        ("lveval/a", "16k"): list(rng.uniform(0.4, 0.8, N)),
        ("lveval/a", "32k"): list(rng.uniform(0.4, 0.8, N)),
        ("lveval/b", "16k"): list(rng.uniform(0.4, 0.8, N)),
    }


def test_injected_regression_fails_and_names_the_bucket(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = baseline()
    worse = {k: [s - 0.3 if k == ("lveval/a", "32k") else s for s in v] for k, v in base.items()}
    a, b = write_run(tmp_path / "A", base, "full"), write_run(tmp_path / "B", worse, "ahn")
    assert main([str(a), str(b), "--max-drop", "1.0"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "lveval/a @ 32k: -30.00 points" in out and "FAIL" in out

    cmp = compare_runs(a, b, max_drop=1.0)
    cell = next(r for r in cmp.rows if r["task"] == "lveval/a" and r["bucket"] == "32k")
    assert cell["delta"] == pytest.approx(-30.0) and cell["n_pairs"] == N
    assert cell["ci_high"] < 0 and cell["regression"]
    assert (cell["score_a"] - cell["score_b"]) == pytest.approx(30.0)
    names = {(r["task"], r["bucket"]) for r in cmp.regressions}
    # the cell, its task total and the level mean over datasets all dropped significantly; untouched cells did not
    assert ("lveval/a", "32k") in names and ("lveval/a", "16k") not in names and ("lveval/b", "16k") not in names
    assert not cmp.passed and cmp.label_a == "full" and cmp.label_b == "ahn"


def test_unchanged_rerun_passes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = write_run(tmp_path / "A", baseline())
    b = write_run(tmp_path / "B", baseline())
    assert main([str(a), str(b)]) == 0
    assert "PASS" in capsys.readouterr().out
    cmp = compare_runs(a, b, max_drop=0.0)  # even with zero tolerance: no change is no regression
    assert all(r["delta"] == 0 and r["ci_low"] == 0 == r["ci_high"] for r in cmp.rows)
    assert cmp.passed


def test_noisy_drop_beyond_tolerance_is_insufficient_not_pass(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    base = baseline()
    # B differs by +13 / -17 points alternately on one bucket: a mean drop of 2 points, but noise
    noisy = {k: [s + (0.13 if i % 2 else -0.17) if k == ("lveval/a", "16k") else s for i, s in enumerate(v)]
             for k, v in base.items()}
    a, b = write_run(tmp_path / "A", base), write_run(tmp_path / "B", noisy)
    cmp = compare_runs(a, b, max_drop=1.0)
    cell = next(r for r in cmp.rows if r["task"] == "lveval/a" and r["bucket"] == "16k")
    assert cell["delta"] == pytest.approx(-2.0)  # beyond the tolerance ...
    assert cell["ci_low"] < 0 < cell["ci_high"]  # ... but not significant: neither a regression nor a pass
    assert not cell["regression"] and cell["insufficient"] and cell["test"] == "bootstrap"
    assert not cmp.passed and main([str(a), str(b), "--max-drop", "1.0"]) == 1
    out = capsys.readouterr().out
    assert "INSUFFICIENT SAMPLES" in out and "PASS" not in out and "lveval/a @ 16k: -2.00 points" in out
    assert main([str(a), str(b), "--max-drop", "2.5"]) == 0  # within a wider tolerance it passes


def test_significant_but_tolerated_drop_passes(tmp_path: Path) -> None:
    base = baseline()
    slight = {k: [s - 0.005 for s in v] for k, v in base.items()}  # -0.5 points everywhere, no noise
    cmp = compare_runs(write_run(tmp_path / "A", base), write_run(tmp_path / "B", slight), max_drop=1.0)
    assert all(r["ci_high"] < 0 for r in cmp.rows) and cmp.passed
    assert all(r["delta"] == pytest.approx(-0.5) for r in cmp.rows)


def test_only_paired_keys_count_and_new_failures_gate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = baseline()
    cand = {k: list(v) for k, v in base.items()}
    cand[("lveval/b", "16k")] = cand[("lveval/b", "16k")][:40]  # B stopped early: 10 keys only in A
    cand[("lveval/a", "16k")][3] = None  # an OOM in B
    cand[("lveval/c", "16k")] = [1.0, 1.0]  # a task only B ran
    a, b = write_run(tmp_path / "A", base), write_run(tmp_path / "B", cand)
    cmp = compare_runs(a, b, max_drop=1.0)
    assert len(cmp.only_in_a) == 10 and cmp.only_in_b == ["lveval/c|16k|0", "lveval/c|16k|1"]
    assert cmp.new_failures == ["lveval/a|16k|3"] and not cmp.regressions
    assert next(r for r in cmp.rows if r["task"] == "lveval/b" and r["bucket"] == "16k")["n_pairs"] == 40
    assert main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "FAILED in B (1): lveval/a|16k|3" in out and "keys only in A (10" in out
    assert "FAIL: 10 key(s) of A missing from B and 2 of B missing from A" in out
    assert main([str(a), str(b), "--allow-new-failures"]) == 1  # the missing keys still fail it
    assert main([str(a), str(b), "--allow-new-failures", "--allow-missing"]) == 0


def test_paired_delta_equals_hand_computation(tmp_path: Path) -> None:
    a = write_run(tmp_path / "A", {("t/x", "1k"): [0.0, 1.0, 1.0, 0.5]})
    b = write_run(tmp_path / "B", {("t/x", "1k"): [1.0, 1.0, 0.0, 0.5]})
    cmp = compare_runs(a, b, max_drop=1.0, n_boot=4000)
    cell = cmp.rows[0]
    assert cell["delta"] == pytest.approx(0.0) and cell["score_a"] == pytest.approx(62.5)
    # paired differences are {+100, 0, -100, 0}: the bootstrap of their mean spans both signs
    assert -100 <= cell["ci_low"] < 0 < cell["ci_high"] <= 100


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = write_run(tmp_path / "A", {("t/x", "1k"): [1.0]})
    assert main([str(a), str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    other = write_run(tmp_path / "B", {("t/y", "1k"): [1.0]})
    assert main([str(a), str(other)]) == 2
    assert "share no sample key" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(a), str(tmp_path / "empty")]) == 2
    assert main([str(a)]) == 2  # argparse: missing RUN_B
    assert main([str(a), str(a), "--max-drop", "-1"]) == 2
    with pytest.raises(RunError):
        compare_runs(a, other, max_drop=1.0)


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = baseline()
    worse = {k: [s - 0.3 for s in v] for k, v in base.items()}
    a, b = write_run(tmp_path / "A", base), write_run(tmp_path / "B", worse)
    assert main([str(a), str(b), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False and doc["max_drop"] == 1.0
    assert {(r["task"], r["bucket"]) for r in doc["regressions"]} >= {("lveval/a", "16k"), ("all", "all")}


def _hashed_run(path: Path, prompts: list[str], answers: list[str], with_hashes: bool = True) -> Path:
    from harness.hashing import record_hashes

    with RunStore.create_or_resume(path, make_manifest({"preset": path.name}, argv=["t"])) as store:
        for i, (prompt, answer) in enumerate(zip(prompts, answers)):
            rec = {"key": f"synthetic/passkey|512|{i}", "task": "synthetic/passkey", "level": "512",
                   "id": str(i), "score": 1.0, "status": "ok", "prediction": answer, "answers": [answer]}
            if with_hashes:
                rec.update(record_hashes(prompt, [ord(c) for c in prompt], [answer]))
            store.append(rec)
    return path


def test_compare_refuses_to_pair_different_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Equal keys, different prompts or answers: exit 2 naming the differing hashes."""
    prompts, answers = [f"the key is {i}" for i in range(4)], [str(i) for i in range(4)]
    a = _hashed_run(tmp_path / "a", prompts, answers)
    assert main([str(a), str(_hashed_run(tmp_path / "same", prompts, answers))]) == 0
    capsys.readouterr()
    other_answer = _hashed_run(tmp_path / "ans", prompts, answers[:3] + ["9"])
    assert main([str(a), str(other_answer)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "1 of 4" in err and "answers_sha256" in err and "prompt_sha256" not in err
    assert "synthetic/passkey|512|3" in err
    other_prompt = _hashed_run(tmp_path / "prompt", ["x" + p for p in prompts], answers)
    assert main([str(a), str(other_prompt)]) == 2
    err = capsys.readouterr().err
    assert "4 of 4" in err and "prompt_sha256, input_ids_sha256" in err and "answers_sha256" not in err


def test_compare_records_without_hashes_warn_or_refuse(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Older runs (no hashes) are paired with a warning; --require-hashes refuses them."""
    prompts, answers = ["p0", "p1"], ["0", "1"]
    old = _hashed_run(tmp_path / "old", prompts, answers, with_hashes=False)
    new = _hashed_run(tmp_path / "new", prompts, answers)
    assert main([str(old), str(new)]) == 0
    captured = capsys.readouterr()
    assert "warning: 2 of the paired samples carry no input hashes" in captured.err
    assert "could not be checked" in captured.out
    assert main([str(old), str(new), "--require-hashes"]) == 2
    assert "without input hashes" in capsys.readouterr().err
