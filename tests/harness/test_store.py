"""Results store: durable appends, crash-safe resume, config-hash guard, exact shard merge, buckets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.buckets import bucket_of, length_bin, record_bucket, sort_buckets
from harness.provenance import config_hash, diff_configs, make_manifest, run_label
from harness.store import (
    SAMPLES,
    ConfigMismatchError,
    RunError,
    RunStore,
    load_run,
    merge_shards,
)

CONFIG = {"preset": "ahn-gdn-3b", "method": {"name": "ahn", "cell": "gdn", "window": 32640}, "tasks": ["lveval"]}


def manifest(config: dict | None = None) -> dict:
    return make_manifest(config or CONFIG, argv=["harness", "run", "--model", "ahn-gdn-3b"])


def rec(i: int, score: float = 1.0, status: str = "ok", **extra: object) -> dict:
    return {"key": f"lveval/factrecall_en|16k|{i}", "task": "lveval/factrecall_en", "level": "16k",
            "id": str(i), "index": i, "score": score, "status": status, **extra}


# ---------------------------------------------------------------------------------------------- store


def test_create_append_reload(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore.create_or_resume(run, manifest()) as store:
        assert not store.resumed and store.done_keys() == set()
        for i in range(5):
            store.append(rec(i))
    lines = (run / SAMPLES).read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[2])["id"] == "2"
    loaded = load_run(run)
    assert [r["id"] for r in loaded.records] == ["0", "1", "2", "3", "4"]
    assert loaded.manifest["config"] == CONFIG
    assert loaded.manifest["config_hash"] == config_hash(CONFIG)
    prov = loaded.manifest["provenance"]
    assert prov["versions"]["python"] and "torch" in prov["versions"] and "transformers" in prov["versions"]
    assert {"revision", "dirty"} <= set(prov["git"]) and prov["hardware"]["cpu_count"] >= 1
    assert prov["command"] == "harness run --model ahn-gdn-3b" and prov["start_time"]
    assert loaded.label == "ahn-gdn-3b"


def test_resume_after_torn_line(tmp_path: Path) -> None:
    """A crash mid-write leaves half a line: resume drops it, keeps the rest, never duplicates."""
    run = tmp_path / "run"
    with RunStore.create_or_resume(run, manifest()) as store:
        for i in range(4):
            store.append(rec(i))
    with open(run / SAMPLES, "ab") as f:  # the torn write of sample 4
        f.write(b'{"key": "lveval/factrecall_en|16k|4", "task": "lveval/fact')
    # readers ignore the torn tail even before any resume
    assert [r["id"] for r in load_run(run).records] == ["0", "1", "2", "3"]

    with RunStore.create_or_resume(run, manifest()) as store:
        assert store.resumed and store.torn_lines_dropped == 1
        done = store.done_keys()
        assert done == {rec(i)["key"] for i in range(4)}
        for i in range(6):  # the runner's loop: skip what is done, redo the torn sample, continue
            if rec(i)["key"] not in done:
                store.append(rec(i, score=0.5))
    raw = [json.loads(line) for line in (run / SAMPLES).read_text().splitlines()]
    assert [r["id"] for r in raw] == ["0", "1", "2", "3", "4", "5"]  # no torn debris, no duplicate
    assert len(load_run(run).records) == 6
    m = load_run(run).manifest
    assert len(m["resumes"]) == 1 and m["provenance"]["start_time"]


def test_resume_drops_garbage_tail_and_skips_bad_middle_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore.create_or_resume(run, manifest()) as store:
        store.append(rec(0))
    with open(run / SAMPLES, "ab") as f:  # a corrupt line in the middle, followed by a good one
        f.write(b"not json\n" + json.dumps(rec(1)).encode() + b"\n")
    with open(run / SAMPLES, "ab") as f:
        f.write(b"\x00" * 64 + b"\n")  # a zero-filled block after a crash: a complete but invalid last line
    with RunStore.create_or_resume(run, manifest()) as store:
        assert store.torn_lines_dropped == 1
        store.append(rec(2))
    run_ = load_run(run)
    assert [r["id"] for r in run_.records] == ["0", "1", "2"] and run_.bad_lines == 1
    assert b"\x00" not in (run / SAMPLES).read_bytes()


def test_kill_9_loses_at_most_the_sample_in_flight(tmp_path: Path) -> None:
    """A real process killed mid-run: every appended sample survives, and resume finishes the job."""
    run = tmp_path / "run"
    code = f"""
import os, sys, json
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from harness.store import RunStore
from harness.provenance import make_manifest
store = RunStore.create_or_resume({str(run)!r}, make_manifest({CONFIG!r}, argv=["x"]))
for i in range(3):
    store.append({{"key": f"k{{i}}", "index": i, "score": 1.0}})
store._fh.write(b'{{"key": "k3", "sco')  # in flight
store._fh.flush()
os.kill(os.getpid(), 9)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    with RunStore.create_or_resume(run, make_manifest(CONFIG, argv=["x"])) as store:
        assert store.done_keys() == {"k0", "k1", "k2"}
        store.append({"key": "k3", "index": 3, "score": 1.0})
    assert [r["key"] for r in load_run(run).records] == ["k0", "k1", "k2", "k3"]


def test_config_mismatch_names_the_settings(tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunStore.create_or_resume(run, manifest()).close()
    other = {**CONFIG, "method": {**CONFIG["method"], "window": 8192}}
    with pytest.raises(ConfigMismatchError) as err:
        RunStore.create_or_resume(run, manifest(other))
    msg = str(err.value)
    assert "method.window: 32640 -> 8192" in msg and "--output" in msg
    # provenance (command line, start time) is not part of the hash: same settings resume
    again = make_manifest(CONFIG, argv=["another", "command"])
    with RunStore.create_or_resume(run, again) as store:
        assert store.resumed


def test_refuses_folder_with_samples_but_no_manifest(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / SAMPLES).write_text('{"key": "a"}\n')
    with pytest.raises(RunError, match="no manifest.json"):
        RunStore.create_or_resume(run, manifest())
    with pytest.raises(RunError, match="no such run folder"):
        load_run(tmp_path / "missing")


def test_second_writer_on_same_file_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore.create_or_resume(run, manifest()):
        with pytest.raises(RunError, match="another process"):
            RunStore.create_or_resume(run, manifest())


def test_last_write_wins_but_failure_never_replaces_success(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore.create_or_resume(run, manifest()) as store:
        store.append(rec(0, status="failed", score=None, error="OOM"))
        store.append(rec(1, score=0.2))
        assert store.done_keys() == {rec(0)["key"], rec(1)["key"]}
        assert store.done_keys(retry_failed=True) == {rec(1)["key"]}
        store.append(rec(0, score=0.7))  # the retry succeeds
        store.append(rec(1, score=0.9))  # a later ok line replaces an ok line
        store.append(rec(1, status="failed", score=None))  # but a failure never replaces a success
        assert store.done_keys(retry_failed=True) == {rec(0)["key"], rec(1)["key"]}
        got = {r["id"]: (r["status"], r["score"]) for r in store.records()}
    assert got == {"0": ("ok", 0.7), "1": ("ok", 0.9)}


def test_record_needs_key_and_is_strict_json(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    with RunStore.create_or_resume(tmp_path / "run", manifest()) as store:
        with pytest.raises(RunError):
            store.append({"score": 1.0})
        store.append({"key": "a", "score": np.float32(0.5), "flops_paper": np.int64(7), "x": float("nan")})
    line = (tmp_path / "run" / SAMPLES).read_text()
    assert json.loads(line) == {"key": "a", "score": 0.5, "flops_paper": 7, "x": None}


# ---------------------------------------------------------------------------------------------- shards


def test_shard_merge_equals_single_process_run(tmp_path: Path) -> None:
    n, world = 23, 3
    records = [rec(i, score=(i % 5) / 4, prompt_tokens_before=1000 * i) for i in range(n)]

    single = tmp_path / "single"
    with RunStore.create_or_resume(single, manifest()) as store:
        for r in records:
            store.append(r)

    sharded = tmp_path / "sharded"
    stores = [RunStore.create_or_resume(sharded, manifest(), rank=r, world=world) for r in range(world)]
    assert RunStore.shard_path(sharded, 1, 3).name == "samples.rank1-of3.jsonl"
    assert RunStore.shard_path(sharded, 0, 1).name == SAMPLES
    for i, r in enumerate(records):  # round-robin, as torchrun ranks would split them
        stores[i % world].append(r)
    # rank 2 crashes mid-write; a restart of that rank resumes its own file
    stores[2]._fh.write(b'{"key": "torn')
    stores[2].close()
    for s in stores[:2]:
        s.close()
    # every rank sees the whole job's done keys, whatever the world size
    with RunStore.create_or_resume(sharded, manifest(), rank=0, world=2) as s:
        assert s.done_keys() == {r["key"] for r in records}
    assert load_run(sharded).records == load_run(single).records  # readable before merging

    merged = merge_shards(sharded)
    assert merged.name == SAMPLES
    assert sorted(p.name for p in sharded.glob("samples*.jsonl")) == [SAMPLES]
    lines = [json.loads(x) for x in merged.read_text().splitlines()]
    assert lines == load_run(single).records  # exact: no loss, no duplicate, sample order
    assert merge_shards(sharded).read_text() == merged.read_text()  # idempotent


def test_merge_survives_a_crash_between_replace_and_cleanup(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore.create_or_resume(run, manifest(), rank=0, world=2) as a:
        a.append(rec(0))
    with RunStore.create_or_resume(run, manifest(), rank=1, world=2) as b:
        b.append(rec(1))
        with pytest.raises(RunError, match="still being written"):
            merge_shards(run)  # rank 1 has not finished
    shard_copy = (run / "samples.rank1-of2.jsonl").read_bytes()
    merge_shards(run)
    (run / "samples.rank1-of2.jsonl").write_bytes(shard_copy)  # as if the unlink never happened
    assert [r["id"] for r in load_run(run).records] == ["0", "1"]
    merge_shards(run)
    assert len((run / SAMPLES).read_text().splitlines()) == 2


# ---------------------------------------------------------------------------------------------- buckets


@pytest.mark.parametrize(
    ("tokens", "label"),
    [(0, "0-4k"), (4095, "0-4k"), (4096, "4k-8k"), (8191, "4k-8k"), (8192, "8k-16k"), (40_000, "32k-64k"),
     (131_071, "64k-128k"), (131_072, "128k+"), (2_000_000, "128k+"), (None, "unknown")],
)
def test_length_bins(tokens: int | None, label: str) -> None:
    assert length_bin(tokens) == label


def test_bucket_prefers_level_then_pre_truncation_length() -> None:
    assert bucket_of({"level": "64k", "prompt_tokens_before": 10}) == "64k"
    assert bucket_of({"level": None, "prompt_tokens_before": 70_000, "prompt_tokens": 5000}) == "64k-128k"
    assert bucket_of({"prompt_tokens": 5000}) == "4k-8k"
    assert record_bucket({"bucket": "32k", "level": "16k"}) == "32k"  # the runner's stored label wins
    assert sort_buckets(["256k", "16k", "128k", "32k", "64k"]) == ["16k", "32k", "64k", "128k", "256k"]
    assert sort_buckets(["128k+", "unknown", "4k-8k", "0-4k", "64k-128k", "8k-16k"]) == [
        "0-4k", "4k-8k", "8k-16k", "64k-128k", "128k+", "unknown"]


# ---------------------------------------------------------------------------------------------- provenance


def test_config_hash_and_diff() -> None:
    a = {"x": 1, "m": {"w": 2, "s": 128}}
    b = {"m": {"s": 128, "w": 2}, "x": 1}
    assert config_hash(a) == config_hash(b)  # key order does not matter
    assert config_hash(a) != config_hash({**a, "x": 2})
    assert diff_configs(a, {"x": 1, "m": {"w": 3}}) == ["m.s: 128 -> \"<absent>\"", "m.w: 2 -> 3"]
    assert run_label({"config": {"method": {"name": "swa"}}}) == "swa"
    assert run_label({"label": "AHN-GDN", "config": {"preset": "p"}}) == "AHN-GDN"
    assert run_label({}, fallback="dir") == "dir"


def test_the_fast_path_switches_are_recorded(monkeypatch) -> None:
    from harness.provenance import collect_provenance

    monkeypatch.setenv("AHN_HARNESS_FUSED_LAYERS", "1")
    monkeypatch.setenv("AHN_HARNESS_WINDOW_ATTENTION", "flex")
    monkeypatch.setenv("UNRELATED_SECRET", "x")
    monkeypatch.setenv("AHN_HARNESS_PLUGINS", "tests.plugins.ct_last")
    provenance = collect_provenance(["harness", "run"])
    switches, env = provenance["fast_paths"], provenance["env"]
    assert switches["AHN_HARNESS_FUSED_LAYERS"] == "1" and switches["AHN_HARNESS_WINDOW_ATTENTION"] == "flex"
    assert switches["AHN_HARNESS_CHUNK_GRAPHS"] == "0" and switches["AHN_HARNESS_STEP_GRAPH"] is True  # defaults
    assert "AHN_HARNESS_FUSED_LAYERS" not in env  # one record of the switches: the value the run read
    assert env["AHN_HARNESS_PLUGINS"] == "tests.plugins.ct_last" and "UNRELATED_SECRET" not in env


def test_git_dirty_flag_matches_git() -> None:
    from harness.provenance import git_info

    info = git_info()
    if info["revision"] is None:
        pytest.skip("not a git checkout")
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True).stdout
    assert info["dirty"] == bool(status.strip()) and len(info["revision"]) == 40
    assert os.path.isabs(sys.executable)


def test_resume_checks_weight_fingerprints(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Changed bytes behind a weights path refuse the resume naming the file; an older manifest only warns."""
    from harness.hashing import fingerprint_files
    from harness.store import WeightsChangedError

    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"one")
    (weights / "notes.md").write_text("not read by the loaders")
    m = manifest()
    m["weights"] = {"model": fingerprint_files(weights)}
    assert set(m["weights"]["model"]["files"]) == {"model.safetensors"}
    run = tmp_path / "run"
    RunStore.create_or_resume(run, m).close()
    (weights / "notes.md").write_text("changed, but not a weight file")
    RunStore.create_or_resume(run, m).close()
    (weights / "model.safetensors").write_bytes(b"two")
    m2 = {**m, "weights": {"model": fingerprint_files(weights)}}
    with pytest.raises(WeightsChangedError, match=r"w/model.safetensors: sha256 .* when the run started"):
        RunStore.create_or_resume(run, m2)
    old = tmp_path / "old"
    RunStore.create_or_resume(old, manifest()).close()  # a manifest without fingerprints
    with caplog.at_level("WARNING"):
        RunStore.create_or_resume(old, m2).close()
    assert "no weight fingerprints" in caplog.text
