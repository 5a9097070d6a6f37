"""The protocol a run follows: a paper preset's `--tasks lveval` is the AHN paper's LV-Eval run, where prompts
reach past the window; LV-Eval's own protocol (15,500 tokens) is one `--protocol official` away, and a run whose
prompts all fit inside sinks + window is flagged before it starts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from harness.cli import main
from tasks import ahn_paper, lveval, protocols


@pytest.mark.parametrize("spec, paper", [
    ("lveval", "ahn-paper:lveval"),
    ("lveval:factrecall_en", "ahn-paper:lveval/factrecall_en"),
    ("lveval:factrecall_en@128k", "ahn-paper:lveval/factrecall_en"),
    ("infinitebench", "ahn-paper:longbook_qa_eng,ahn-paper:longbook_qa_chn"),
    ("infinitebench:longbook_qa_chn", "ahn-paper:longbook_qa_chn"),
    ("infinitebench:passkey", "infinitebench:passkey"),  # not run by the paper: its own protocol
    ("longbench,synthetic:passkey@4k", "longbench,synthetic:passkey@4k"),
    ("lveval,ahn-paper:lveval", "ahn-paper:lveval"),  # no task twice
])
def test_the_paper_protocol_rewrites_benchmark_selections(spec, paper):
    assert protocols.apply(spec, "paper") == paper
    assert protocols.apply(spec, "official") == spec


def test_protocol_resolution_and_bad_values():
    assert protocols.resolve("auto", paper_preset=True) == "paper"
    assert protocols.resolve("auto", paper_preset=False) == "official"
    assert protocols.resolve("official", paper_preset=True) == "official"
    with pytest.raises(ValueError, match="unknown protocol 'papr'; valid: auto, paper, official"):
        protocols.resolve("papr", True)
    with pytest.raises(ValueError, match="128k only .*'16k'.*--protocol official"):
        protocols.apply("lveval@16k+128k", "paper")


def test_prompt_bounds_known_before_any_data():
    """The bounds are the protocols' own numbers: LV-Eval's 15,500 (no chat template), a synthetic level's
    length, the paper's 256,000 + the chat template's slack; an untruncated benchmark has none."""
    assert protocols.max_prompt_tokens("lveval") == lveval.OFFICIAL_TRUNCATION.max_tokens == 15_500
    assert protocols.max_prompt_tokens("synthetic:passkey@4k+8k") == 8192
    assert protocols.max_prompt_tokens("ahn-paper:lveval") == 256_000 + protocols.CHAT_TEMPLATE_SLACK
    assert protocols.max_prompt_tokens("lveval", max_length=40_000) == 40_000
    assert protocols.max_prompt_tokens("synthetic:passkey") is None  # no level: lengths not known


def test_the_users_command_flags_and_refuses_a_window_that_holds_every_prompt(capsys, monkeypatch, caplog):
    """LV-Eval's own protocol under ahn-gdn-3b: 15,500 tokens fit in 128 + 32,640, so the method never
    engages; said before any weights load, refused with --require-memory."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["run", "--model", "ahn-gdn-3b", "--tasks", "lveval:factrecall_en", "--protocol", "official",
            "--output", "/nonexistent-dir/x"]
    assert main([*argv, "--require-memory"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ahn-gdn-3b: every prompt")
    assert "at most 15,500 tokens" in err and "keep 32,768" in err and "--protocol paper" in err
    with caplog.at_level(logging.WARNING, logger="harness.cli"):
        main(argv)  # fails later (no weights here), after the warning
    assert any("run exactly as full attention" in r.getMessage() for r in caplog.records)
    caplog.clear()
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="harness.cli"):  # the paper's protocol: no warning
        assert main([*argv[:-4], "--output", "/nonexistent-dir/x", "--require-memory"]) == 2
    assert not any("full attention" in r.getMessage() for r in caplog.records)
    assert "every prompt" not in capsys.readouterr().err


def _hub_cache_entry(cache: Path, repo: str, files_from: Path) -> None:
    """`repo` in a Hugging Face hub cache laid out as `hf download` leaves it (refs/main -> a snapshot)."""
    from tasks import hub

    root = cache / f"models--{repo.replace('/', '--')}"
    revision = hub.model_revision(repo)  # the revision the harness pins for this repo, or "main"
    commit = revision if len(revision) == 40 else "0" * 40
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in files_from.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    if revision != "main" and len(revision) != 40:  # a pinned branch or tag name
        (root / "refs" / revision).write_text(commit)


def _lveval_record(i: int, chars: int) -> dict:
    filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
    context = (filler * (chars // len(filler) + 1))[:chars]
    cut = chars // 3
    context = context[:cut] + " David Beckham was the composer of the piece. " + context[cut:]
    return {"input": f"Who composed the piece {i}?", "context": context, "answers": ["Ludwig van Beethoven"],
            "length": chars, "dataset": "factrecall_en", "language": "en",
            "answer_keywords": "Ludwig van Beethoven", "confusing_facts": ["David Beckham"]}


def test_ahn_gdn_3b_on_lveval_runs_the_papers_protocol_past_the_window(tmp_path, monkeypatch):
    """The user's command on a local copy of the weights (the Hub cache, offline) and a one-sample local LV-Eval
    file: the manifest names the paper's protocol and budget, and the prompt exceeds sinks + window. One sample:
    each is a ~33k-token prefill on the CPU, and the protocol is the run's, not a sample's."""
    from ahn.checkpoint import save_ahn_checkpoint
    from baselines import attach, make_method
    from harness.presets import get_preset
    from harness.store import load_run
    from tests.tiny_models import save_tiny_model_folder

    preset = get_preset("ahn-gdn-3b")
    base = save_tiny_model_folder(tmp_path / "base")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    method = make_method("ahn-gdn", sinks=preset.sinks, window=preset.window)
    with attach(model, method):
        torch.manual_seed(0)
        with torch.no_grad():
            for block in method.blocks:
                block.fn.o_proj.weight.normal_(0, 0.05)
        save_ahn_checkpoint(model, tmp_path / "ahn", "gdn", model.config.to_dict())
    cache = tmp_path / "hf-cache"
    _hub_cache_entry(cache, preset.model, base)
    _hub_cache_entry(cache, preset.ahn_checkpoint, tmp_path / "ahn")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # read at call time
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    data = tmp_path / "lveval"
    data.mkdir()
    for d in lveval.DATASETS:  # `--tasks lveval` reads every dataset's 128k file; the others hold no record
        recs = [_lveval_record(0, 33_200)] if d == "factrecall_en" else []
        (data / f"{d}_128k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "run"
    assert main(["run", "--model", "ahn-gdn-3b", "--tasks", "lveval", "--data-dir", str(data), "--output",
                 str(out), "--chunk", "4096", "--max-new-tokens", "2", "--require-memory", "--no-progress"]) == 0
    run = load_run(out)
    protocol = run.manifest["protocol"]
    assert protocol["name"] == "paper" and protocol["tasks"] == "ahn-paper:lveval"
    task = f"{ahn_paper.FAMILY}/lveval/factrecall_en"
    assert protocol["truncation"][task] == {"kind": "middle", "max_tokens": 256_000, "reserve": 0,
                                            "style": "lveval", "chat_template": True}
    assert run.manifest["config"]["protocol"] == "paper"
    kept = preset.sinks + preset.window
    assert [r["task"] for r in run.records] == [task]
    assert all(r["status"] == "ok" and r["chat_template"] and not r["truncated"] for r in run.records)
    assert all(r["prompt_tokens"] > kept for r in run.records), [r["prompt_tokens"] for r in run.records]


def test_max_length_sets_any_tasks_budget():
    from tasks.prompting import NO_TRUNCATION, Truncation, with_max_length

    left = Truncation("left", 128_000, reserve=256)
    assert with_max_length(left, 4096) == Truncation("left", 4096, reserve=256)
    assert with_max_length(lveval.OFFICIAL_TRUNCATION, 9000) == Truncation("middle", 9000)
    assert with_max_length(NO_TRUNCATION, 2048) == Truncation("middle", 2048)  # untruncated task: now cut
    assert with_max_length(left, None) is left
    with pytest.raises(ValueError, match="max_tokens > reserve"):
        with_max_length(left, 200)


def test_presets_sharing_a_tokenizer_make_their_samples_once(tmp_path, monkeypatch):
    """Generated tasks count lengths in the model's tokens; a job's presets on one base make them once."""
    import harness.runner as runner

    calls = []
    real = runner.load_samples

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "load_samples", counting)
    assert main(["run", "--model", "tiny-full,tiny-swa", "--tasks", "synthetic:passkey@512", "--limit", "1",
                 "--max-new-tokens", "2", "--output", str(tmp_path / "job"), "--no-progress"]) == 0
    assert calls == ["synthetic:passkey@512"]
    from harness.store import load_run

    a, b = (load_run(tmp_path / "job" / p).records for p in ("tiny-full", "tiny-swa"))
    assert [r["prompt_sha256"] for r in a] == [r["prompt_sha256"] for r in b]
