"""`harness run` end to end on a tiny local model: results, resume after kill -9, torchrun sharding, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.store import load_run

REPO = Path(__file__).resolve().parents[2]
VOLATILE = {"prefill_s", "decode_s", "decode_s_per_token", "wall_s", "peak_mem_bytes"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A random tiny Qwen2 with the byte tokenizer, saved like any local model folder."""
    from tests.tiny_models import save_tiny_model_folder

    return save_tiny_model_folder(tmp_path_factory.mktemp("tiny-model"))


def _args(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model_dir), "--method", "ahn-gdn", "--window", "200", "--sinks", "4",
            "--chunk", "128", "--tasks", "synthetic:passkey@512+1k,synthetic:kv_retrieval@700",
            "--limit", "2", "--output", str(out), "--no-progress", "--max-new-tokens", "6",
            "--ahn-checkpoint", str(out.parent / "ahn"), *extra]


@pytest.fixture(scope="module")
def ahn_ckpt(tiny_dir, tmp_path_factory) -> Path:
    """An AHN-GDN checkpoint in the released format with non-zero output maps."""
    from ahn.checkpoint import save_ahn_checkpoint
    from baselines import attach, make_method

    root = tmp_path_factory.mktemp("runs")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    method = make_method("ahn-gdn", sinks=4, window=200)
    with attach(model, method):
        torch.manual_seed(0)
        with torch.no_grad():
            for block in method.blocks:
                block.fn.o_proj.weight.normal_(0, 0.05)
        save_ahn_checkpoint(model, root / "ahn", "gdn", model.config.to_dict())
    return root


def _strip(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def test_run_writes_results_and_resumes(tiny_dir, ahn_ckpt, capsys):
    out = ahn_ckpt / "a"
    assert main(_args(tiny_dir, out)) == 0
    run = load_run(out)
    assert len(run.records) == 6 and all(r["status"] == "ok" for r in run.records)
    rec = run.records[0]
    for field in ("key", "bucket", "prompt_tokens_before", "prompt_tokens", "prediction", "score", "prefill_s",
                  "flops_paper", "flops_actual", "cache_bytes_paper", "cache_bytes_actual", "cache_bytes_measured"):
        assert field in rec, field
    assert {r["bucket"] for r in run.records} == {"512", "1k", "700"}
    # the live cache equals the analytic model of this implementation, sample by sample
    assert all(r["cache_bytes_measured"] == r["cache_bytes_actual"] for r in run.records)
    assert (out / "summary.md").exists() and (out / "manifest.json").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["method"]["method"] == "ahn-gdn"
    before = (out / "samples.jsonl").read_text()
    assert main(_args(tiny_dir, out)) == 0  # same command: everything is done, nothing recomputed
    assert (out / "samples.jsonl").read_text() == before
    assert main(_args(tiny_dir, out, "--seed", "3")) == 2  # another config in the same folder is refused
    assert "differ" in capsys.readouterr().err


def test_kill_9_then_resume_equals_uninterrupted(tiny_dir, ahn_ckpt):
    """kill -9 mid-run, same command again: same per-sample results, no duplicates."""
    clean, killed = ahn_ckpt / "clean", ahn_ckpt / "killed"
    assert main(_args(tiny_dir, clean)) == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "harness", *_args(tiny_dir, killed)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = killed / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not samples.exists() or samples.read_text().count("\n") < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = samples.read_text().count("\n")
    assert 2 <= partial < 6, "the kill must land mid-run"
    assert main(_args(tiny_dir, killed)) == 0  # the same command resumes (here in-process: the code is the same)
    lines = [json.loads(x) for x in samples.read_text().splitlines() if x.strip()]
    assert len(lines) == len({r["key"] for r in lines}) == 6
    assert _strip(load_run(killed).records) == _strip(load_run(clean).records)


def test_torchrun_two_processes_equal_one(tiny_dir, ahn_ckpt):
    """torchrun --nproc_per_node 2 (gloo, CPU) gives the one-process per-sample results."""
    one, two = ahn_ckpt / "one", ahn_ckpt / "two"
    assert main(_args(tiny_dir, one)) == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",  # a free port
           "-m", "harness", *_args(tiny_dir, two)]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not list(two.glob("samples.rank*"))  # shards merged
    assert _strip(load_run(two).records) == _strip(load_run(one).records)


def test_offline_hub_model_fails_at_once(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.time()
    code = main(["run", "--model", "ahn-gdn-3b", "--tasks", "lveval:factrecall_en@16k", "--protocol", "official",
                 "--output", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and time.time() - t0 < 10
    assert "Qwen/Qwen2.5-3B-Instruct" in err and "--base-path" in err  # names the model and the local route


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "--model", "ahn-gdn-3x", "--tasks", "lveval"], "unknown preset 'ahn-gdn-3x'"),
        (["run", "--model", "ahn-gdn-3b", "--tasks", "lveval:nope"], "nope"),
        (["info", "--model", "ahn-gdn-3b", "--length", "12q"], "bad length"),
    ],
)
def test_bad_input_is_named(argv, needle, capsys):
    assert main(argv) == 2  # argparse's errors too: main returns 2, it does not raise SystemExit
    assert needle in capsys.readouterr().err


def test_info_json_reproduces_table9_rows(capsys):
    """info --json gives Table 9's params, FLOPs and cache for 3B and 14B."""
    from harness.tables import load_published

    published = load_published()["efficiency"]
    names = {"Full Attn": "qwen2.5-{b}", "Sinks+SWA": "qwen2.5-{b}-swa", "CT-Max": "qwen2.5-{b}-ct-max",
             "CT-Average": "qwen2.5-{b}-ct-avg", "AHN-Mamba2": "ahn-mamba2-{b}", "AHN-DN": "ahn-dn-{b}",
             "AHN-GDN": "ahn-gdn-{b}"}
    for base, size in (("Qwen2.5-3B-Instruct", "3b"), ("Qwen2.5-14B-Instruct", "14b")):
        for row, preset in names.items():
            assert main(["info", "--model", preset.format(b=size), "--length", "128000", "--json"]) == 0
            got = json.loads(capsys.readouterr().out)
            pub = published[base][row]
            assert round(got["params_extra"] / 1e6, 1) == pub["params_M"]
            for key, field in (("flops_mixing", "mix_PF"), ("flops_model", "model_PF")):
                value = got[key] / 1e15
                assert abs(value - pub[field]) <= 0.01 + 1e-9, (preset, key, value, pub[field])
            assert abs(got["cache_bytes"] / 1e9 - pub["cache_GB"]) <= 0.01 + 1e-9, (preset, got["cache_bytes"])


def _short_args(model_dir: Path, ahn_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model_dir), "--method", "ahn-gdn", "--window", "200", "--sinks", "4",
            "--chunk", "128", "--tasks", "synthetic:passkey@512", "--limit", "2", "--output", str(out),
            "--no-progress", "--max-new-tokens", "2", "--ahn-checkpoint", str(ahn_dir), *extra]


def test_records_carry_input_hashes_and_compare_refuses_another_seed(tiny_dir, ahn_ckpt, tmp_path, capsys):
    """The hashes are of what was fed; runs of two seeds cannot be paired."""
    import hashlib

    import numpy as np
    from transformers import AutoTokenizer

    from tasks.prompting import prepare
    from tasks.registry import load_samples, task_settings

    a, b = tmp_path / "seed0", tmp_path / "seed7"
    assert main(_short_args(tiny_dir, ahn_ckpt / "ahn", a)) == 0
    assert main(_short_args(tiny_dir, ahn_ckpt / "ahn", b, "--seed", "7")) == 0
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    samples = {s.key: s for s in load_samples("synthetic:passkey@512", limit=2, tokenizer=tok, seed=0)}
    for rec in load_run(a).records:
        s = samples[rec["key"]]
        p = prepare(s, tok, task_settings(s).truncation, rec["chat_template"])
        assert rec["prompt_sha256"] == hashlib.sha256(p.text.encode("utf-8")).hexdigest()
        assert rec["input_ids_sha256"] == hashlib.sha256(np.array(p.input_ids, dtype="<i8").tobytes()).hexdigest()
        want = hashlib.sha256(json.dumps(s.answers, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
        assert rec["answers_sha256"] == want
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "2 of 2 shared sample keys differ" in err and "prompt_sha256" in err and "answers_sha256" in err
    assert main(["compare", str(a), str(a)]) == 0


def test_resume_refuses_changed_weights_and_names_the_file(tiny_dir, ahn_ckpt, tmp_path, capsys):
    """New bytes behind the same --ahn-checkpoint or --model path refuse the resume."""
    import hashlib
    import shutil

    from safetensors.torch import load_file, save_file

    model_dir, ahn_dir, out = tmp_path / "model", tmp_path / "ahn", tmp_path / "run"
    shutil.copytree(tiny_dir, model_dir)
    shutil.copytree(ahn_ckpt / "ahn", ahn_dir)
    args = _short_args(model_dir, ahn_dir, out)
    assert main(args) == 0
    weights = json.loads((out / "manifest.json").read_text())["weights"]
    for role, folder in (("model", model_dir), ("ahn_checkpoint", ahn_dir)):
        got = weights[role]["files"]["model.safetensors"]
        assert got["sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        assert got["size"] == (folder / "model.safetensors").stat().st_size
    before = (out / "samples.jsonl").read_bytes()
    os.utime(ahn_dir / "model.safetensors")  # same bytes, new mtime: still the same weights
    assert main(args) == 0
    for target in (ahn_dir / "model.safetensors", model_dir / "model.safetensors"):
        original = target.read_bytes()
        tensors = load_file(target)
        save_file({k: v + 0.01 for k, v in tensors.items()}, target)
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err
        assert str(target) in err and "sha256" in err and "other weights" in err
        assert (out / "samples.jsonl").read_bytes() == before  # nothing was mixed in
        target.write_bytes(original)
    assert main(args) == 0  # restored: resumes again


def test_a_window_holding_every_prompt_is_said_once(tiny_dir, ahn_ckpt, tmp_path, caplog):
    """Sinks + window larger than every prompt is full attention; the run says so once."""
    args = _short_args(tiny_dir, ahn_ckpt / "ahn", tmp_path / "wide")
    args[args.index("--window") + 1] = "4000"
    with caplog.at_level("WARNING", logger="harness.runner"):
        assert main(args) == 0
    said = [r.getMessage() for r in caplog.records if "hold every prompt" in r.getMessage()]
    assert len(said) == 1 and "4004 tokens" in said[0] and "full attention" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="harness.runner"):
        assert main(_short_args(tiny_dir, ahn_ckpt / "ahn", tmp_path / "narrow")) == 0
    assert not [r for r in caplog.records if "hold every prompt" in r.getMessage()]


def test_hub_downloads_fetch_only_the_files_the_loaders_read(monkeypatch):
    """locate() passes allow_patterns, cached lookup and download alike."""
    import fnmatch

    import huggingface_hub

    from harness import loading

    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append(kwargs)
        if kwargs.get("local_files_only"):
            raise FileNotFoundError("not cached")
        return "/nonexistent/snapshot"

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert loading.locate("Qwen/Qwen2.5-3B-Instruct") == "/nonexistent/snapshot"
    assert len(calls) == 2 and all(c.get("allow_patterns") for c in calls)
    patterns = calls[-1]["allow_patterns"]

    def fetched(name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) for p in patterns)

    read = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
            "merges.txt", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "chat_template.jinja"]
    skipped = ["pytorch_model.bin", "model.pth", "model.gguf", "onnx/model.onnx", "original/consolidated.00.pth",
               "flax_model.msgpack", "tf_model.h5", "consolidated.safetensors", "original/config.json"]
    assert all(fetched(n) for n in read), [n for n in read if not fetched(n)]
    assert not any(fetched(n) for n in skipped), [n for n in skipped if fetched(n)]
