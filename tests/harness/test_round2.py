"""The second tiny world's checkers (studies/round2.py) on constructed run folders: each answer read back, and negative controls that must fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.store import RunError
from studies.round2 import (
    NEEDLE_SPAN,
    all_needles_outside,
    capacity_report,
    collect,
    digits_right,
    kv_report,
    length_report,
    write_report,
)

SINKS, WINDOW = 32, 480
LENGTHS = {"1k": 1024, "2k": 2048, "4k": 4096, "8k": 8192, "16k": 16384, "32k": 32768}
REPO = Path(__file__).resolve().parents[2]


def _write_run(folder: Path, label: str, method: str, records: list[dict]) -> Path:
    folder.mkdir(parents=True)
    cfg = {"method": method} if method == "full" else {"method": method, "sinks": SINKS, "window": WINDOW}
    (folder / "manifest.json").write_text(json.dumps({"label": label, "config": {"method": cfg}}))
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _rec(task: str, n: int, i: int, score: float, offsets: list[int] | None = None) -> dict:
    offsets = offsets if offsets is not None else [200]
    return {"key": f"{task}|{n}|{i}", "task": task, "bucket": str(n), "prompt_tokens": n - 2, "status": "ok",
            "score": score, "extra": {"n_tokens": n, "needle_token_offset": offsets[0], "needle_token_offsets": offsets}}


def _length_records(score_at, n: int = 8) -> list[dict]:
    return [_rec(task, tokens, i, score_at(tokens, i)) for tokens in LENGTHS.values() for i in range(n)
            for task in ("synthetic/passkey", "synthetic/number_string")]


def test_needles_outside_means_every_needle():
    r = _rec("synthetic/passkey_k2", 4096, 0, 1.0, [200, 4094 - WINDOW - NEEDLE_SPAN])
    assert all_needles_outside(r, SINKS, WINDOW) is True
    r["extra"]["needle_token_offsets"][1] += 1  # the second needle's tail is still in the window
    assert all_needles_outside(r, SINKS, WINDOW) is False
    r["extra"]["needle_token_offsets"] = [10, 200]  # a sink
    assert all_needles_outside(r, SINKS, WINDOW) is False
    assert all_needles_outside({"prompt_tokens": 100, "extra": {}}, SINKS, WINDOW) is None


def test_length_names_where_each_method_falls_below_half(tmp_path):
    _write_run(tmp_path / "a" / "full", "tiny-full", "full", _length_records(lambda n, i: float(n <= 4096)))
    _write_run(tmp_path / "a" / "gdn", "tiny-ahn-gdn", "ahn-gdn", _length_records(lambda n, i: 1.0))
    # 3 of 8 right everywhere: 37.5%, below half from the first length (a negative control for "none")
    _write_run(tmp_path / "b" / "dn", "tiny-ahn-dn", "ahn-dn", _length_records(lambda n, i: float(i < 3)))
    # exactly half is not below half; 4 of 8 then 3 of 8 from 16k
    _write_run(tmp_path / "b" / "m2", "tiny-ahn-mamba2", "ahn-mamba2",
               _length_records(lambda n, i: float(i < (4 if n < 16384 else 3))))
    rep = length_report(collect(tmp_path), n_boot=200)
    got = {label: m["below_half"] for label, m in rep["methods"].items()}
    assert got == {"tiny-full": "8k", "tiny-ahn-gdn": None, "tiny-ahn-dn": "1k", "tiny-ahn-mamba2": "16k"}
    assert list(rep["methods"])[0] == "tiny-full"  # full, then bounded methods
    row = rep["methods"]["tiny-ahn-dn"]["by_length"]["4k"]
    assert row["n"] == 16 and row["mean"] == pytest.approx(3 / 8)
    assert row["ci"][0] < 3 / 8 < row["ci"][1]  # the CI brackets the mean and is not degenerate
    assert rep["methods"]["tiny-ahn-gdn"]["by_length"]["32k"]["ci"] == [1.0, 1.0]
    assert rep["lengths"] == list(LENGTHS)


def test_length_pools_tasks_with_equal_weight(tmp_path):
    recs = [_rec("synthetic/passkey", 1024, i, 1.0) for i in range(6)] + \
           [_rec("synthetic/number_string", 1024, i, 0.0) for i in range(2)]
    _write_run(tmp_path / "x", "tiny-swa", "swa", recs)
    rep = length_report(collect(tmp_path), n_boot=200)
    row = rep["methods"]["tiny-swa"]["by_length"]["1k"]
    assert row["mean"] == 0.5 and row["n"] == 8  # (1 + 0) / 2, not 6 / 8
    assert rep["methods"]["tiny-swa"]["below_half"] is None


def test_a_sample_in_two_folders_of_one_label_is_refused(tmp_path):
    recs = _length_records(lambda n, i: 1.0, n=2)
    _write_run(tmp_path / "p1", "tiny-swa", "swa", recs)
    _write_run(tmp_path / "p2", "tiny-swa", "swa", recs[:1])
    with pytest.raises(RunError, match="also in"):
        collect(tmp_path)
    with pytest.raises(RunError, match="no run folders"):
        collect(tmp_path / "p1" / "nothing-here")


def _capacity_records(score_of_k, lengths=(4096, 16384), n: int = 32, inside_every: int = 0) -> list[dict]:
    out = []
    for tokens in lengths:
        for k in (1, 2, 4, 8, 16):
            for i in range(n):
                offsets = [300 + 50 * j for j in range(k)]
                if inside_every and i % inside_every == 0:
                    offsets[-1] = tokens - 100  # a needle still in the window: must not count
                out.append(_rec(f"synthetic/passkey_k{k}", tokens, i, score_of_k(k, i), offsets))
    return out


def test_capacity_reads_the_largest_k_held(tmp_path):
    _write_run(tmp_path / "gdn", "tiny-ahn-gdn", "ahn-gdn", _capacity_records(lambda k, i: float(k <= 4)))
    # a memory at 15/32 for every k holds nothing at >= 50% (negative control)
    _write_run(tmp_path / "ct", "tiny-ct-max", "ct-max", _capacity_records(lambda k, i: float(i < 15)))
    _write_run(tmp_path / "swa", "tiny-swa", "swa", _capacity_records(lambda k, i: 1.0, inside_every=4))
    rep = capacity_report(collect(tmp_path), n_boot=200)
    assert rep["methods"]["tiny-ahn-gdn"]["largest_k_at_half"] == {"4k": 4, "16k": 4}
    assert rep["methods"]["tiny-ct-max"]["largest_k_at_half"] == {"4k": None, "16k": None}
    swa = rep["methods"]["tiny-swa"]
    assert swa["excluded_needle_in_window"] == 2 * 5 * 8 and swa["by_length"]["4k"]["8"]["n"] == 24
    assert rep["methods"]["tiny-ahn-gdn"]["by_length"]["16k"]["16"]["mean"] == 0.0
    assert rep["ks"] == [1, 2, 4, 8, 16] and rep["lengths"] == ["4k", "16k"]


def _kv_records(score, lengths=(1024, 2048, 4096), n: int = 32) -> list[dict]:
    return [_rec("synthetic/kv_retrieval", t, i, score(t, i), [200 if i % 2 else t - 200]) for t in lengths
            for i in range(n)]


def test_kv_teacher_bar_and_paired_difference(tmp_path):
    _write_run(tmp_path / "full", "tiny-full", "full", _kv_records(lambda t, i: float(i != 0)))  # 31/32 = 97%
    _write_run(tmp_path / "swa", "tiny-swa", "swa", _kv_records(lambda t, i: float(i % 2 == 0)))  # in-window only
    _write_run(tmp_path / "gdn", "tiny-ahn-gdn", "ahn-gdn", _kv_records(lambda t, i: 1.0))
    _write_run(tmp_path / "dn", "tiny-ahn-dn", "ahn-dn", _kv_records(lambda t, i: float(i % 2 == 0)))
    rep = kv_report(collect(tmp_path), n_boot=200)
    assert rep["teacher_ok"] is True
    gdn, dn = rep["methods"]["tiny-ahn-gdn"], rep["methods"]["tiny-ahn-dn"]
    assert gdn["beyond_window"]["2k"]["n"] == 16 and gdn["beyond_window"]["2k"]["mean"] == 1.0
    assert gdn["vs_swa"]["beats"] and gdn["vs_swa"]["difference"] == 1.0 and gdn["vs_swa"]["n"] == 48
    assert not dn["vs_swa"]["beats"] and dn["vs_swa"]["difference"] == 0.0  # no better than sinks + window


VALUE = "6d398ee8-cfb1-4812-88db-9ed5b7388a2a"


def test_digits_right_counts_hex_digits_in_place():
    rec = {"answers": [VALUE]}
    assert digits_right({**rec, "prediction": VALUE + "\n\nKey: ..."}) == 1.0
    half = "".join(ch if ch == "-" or i % 2 else "z" for i, ch in enumerate(VALUE))  # every other place wrong
    assert digits_right({**rec, "prediction": " " + half}) == 16 / 32
    shifted = "0" + VALUE[:-1]  # one character late: a copy in the wrong place is not credited
    assert digits_right({**rec, "prediction": shifted}) == sum(a == b for a, b in zip(shifted, VALUE) if b != "-") / 32
    assert digits_right({**rec, "prediction": VALUE[:8]}) == 8 / 32  # cut short
    assert digits_right({**rec, "prediction": None}) == 0.0
    assert digits_right({"prediction": VALUE}) is None


def test_kv_report_gives_digits_right_beyond_the_window(tmp_path):
    wrong = VALUE[:19] + "".join("0" if ch != "0" else "1" for ch in VALUE[19:])  # 16 of 32 digits in place
    recs = _kv_records(lambda t, i: 0.0, lengths=(1024, 2048, 4096, 8192), n=4)
    for r in recs:  # beyond the window half the digits up to 4k, all of them at 8k; in the window all of them
        beyond = r["extra"]["needle_token_offset"] == 200
        r["answers"], r["prediction"] = [VALUE], (wrong if beyond and r["extra"]["n_tokens"] <= 4096 else VALUE)
    _write_run(tmp_path / "gdn", "tiny-ahn-gdn", "ahn-gdn", recs)
    rep = kv_report(collect(tmp_path), n_boot=200)
    row = rep["methods"]["tiny-ahn-gdn"]
    digits = row["digits_right_beyond_window"]
    assert digits["n"] == 6 and digits["mean"] == 0.5  # pooled: the pairs that left the window, 1k-4k only
    assert row["beyond_window"]["2k"]["digits_right"] == 0.5 and row["beyond_window"]["8k"]["digits_right"] == 1.0


def test_kv_teacher_below_the_bar_fails(tmp_path):
    # 28/32 = 87.5% at 4k: under 90%, so the base does not solve the task
    _write_run(tmp_path / "full", "tiny-full", "full", _kv_records(lambda t, i: float(t < 4096 or i >= 4)))
    _write_run(tmp_path / "swa", "tiny-swa", "swa", _kv_records(lambda t, i: 0.0))
    rep = kv_report(collect(tmp_path), n_boot=200)
    assert rep["teacher_ok"] is False and rep["methods"]["tiny-full"]["teacher_ok"] is False
    # beyond the training length the bar does not apply
    assert kv_report(collect(tmp_path), training_length=2048, n_boot=200)["teacher_ok"] is True


def test_write_report_and_script(tmp_path):
    root = tmp_path / "runs"
    _write_run(root / "full", "tiny-full", "full", _length_records(lambda n, i: float(n <= 4096), n=4))
    _write_run(root / "gdn", "tiny-ahn-gdn", "ahn-gdn", _length_records(lambda n, i: float(n <= 8192), n=4))
    write_report("length", root, tmp_path / "out" / "round2_length", n_boot=100)
    md = (tmp_path / "out" / "round2_length.md").read_text()
    assert "| tiny-ahn-gdn |" in md and "| 16k |" in md and "![length](round2_length.png)" in md
    assert (tmp_path / "out" / "round2_length.png").stat().st_size > 1000
    data = json.loads((tmp_path / "out" / "round2_length.json").read_text())
    assert data["methods"]["tiny-full"]["below_half"] == "8k"
    with pytest.raises(ValueError, match="unknown question 'speed'; valid: length, capacity, kv"):
        write_report("speed", root, tmp_path / "x")
    out = subprocess.run([sys.executable, "-m", "studies.check_round2", "kv", str(root), "--out",
                          str(tmp_path / "kv")], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "no scored synthetic/kv_retrieval sample" in out.stderr


def test_length_splits_the_memory_by_needle_distance(tmp_path):
    """Right when the needle is under 2k tokens away, wrong beyond, at every length: each row falls along the
    distance axis, and the columns agree across lengths (forgetting, not a length effect). Needles still in
    the window and full attention have no distance table."""
    recs = []
    for n in (4096, 16384):
        for i, d in enumerate((600, 1500, 3000, 3500, 12000)):
            if d + NEEDLE_SPAN + WINDOW > n - 2:
                continue
            recs.append(_rec("synthetic/passkey", n, i, float(d < 2048), [n - 2 - d]))
        recs.append(_rec("synthetic/passkey", n, 99, 0.0, [n - 2 - 100]))  # in the window: left out
    _write_run(tmp_path / "gdn", "tiny-ahn-gdn", "ahn-gdn", recs)
    _write_run(tmp_path / "full", "tiny-full", "full", recs)
    rep = length_report(collect(tmp_path), n_boot=200)
    by = rep["methods"]["tiny-ahn-gdn"]["by_distance"]
    assert {b: p["mean"] for b, p in by["4k"].items()} == {"<1k": 1.0, "1k-2k": 1.0, "2k-4k": 0.0}
    assert {b: p["mean"] for b, p in by["16k"].items()} == {"<1k": 1.0, "1k-2k": 1.0, "2k-4k": 0.0, "8k-16k": 0.0}
    assert sum(p["n"] for p in by["16k"].values()) == 5  # the in-window needle is not counted
    assert rep["methods"]["tiny-full"]["by_distance"] == {}
    from studies.round2 import length_markdown

    text = length_markdown(rep, "x")
    assert "## Where the memory fails" in text and "| 16k | 100% [100%, 100%] (n=1)" in text
