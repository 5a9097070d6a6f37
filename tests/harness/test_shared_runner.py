"""`harness run --shared-context`: one record per turn equal to the engine's shared-context functions, resumable
after kill -9 (a partly recorded sample continues at its next turn), a sample's own questions accepted, bad input
named."""

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

from baselines.engine import generate
from baselines.shared_context import multi_request, multi_turn
from harness.cli import main
from harness.loading import loaded
from harness.presets import resolve_model
from harness.runner import RunSettings
from harness.shared_runner import contexts, run_shared_preset, shared_of, turn_table
from harness.store import load_run
from tasks.registry import load_samples
from tasks.sample import Sample

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "leaderboards" / "tiny" / "round2" / "base"  # answers passkey_k with full attention
CHECKPOINTS = {"ahn-gdn": REPO / "leaderboards" / "tiny" / "round2" / "ahn-gdn"}
TASK = "synthetic:passkey_k4@2k"
TIMES = ("wall_s", "prefill_s", "decode_s", "decode_s_per_token", "peak_mem_bytes")

pytestmark = pytest.mark.skipif(not (BASE / "config.json").exists(), reason="the committed tiny base is absent")


def _preset(method: str):
    bounded = method != "full"
    ckpt = CHECKPOINTS.get(method)
    return resolve_model(str(BASE), method, 32 if bounded else None, 480 if bounded else None,
                         str(ckpt) if ckpt else None)


def _strip(records: list[dict]) -> list[dict]:
    out = []
    for r in records:
        r = {k: v for k, v in r.items() if k not in TIMES}
        r["extra"] = {k: v for k, v in r["extra"].items() if k != "context_prefill_s"}
        out.append(r)
    return out


def _reference(method: str, mode: str, limit: int) -> list[list[int]]:
    """Each turn's tokens from the engine's functions, the prompt cut by hand: the passkey_k prompt up to its
    question, then "What is the pass key of NAME?" for each name in the needles' order."""
    preset = _preset(method)
    out = []
    with loaded(preset, "cpu", "float32") as lo:
        for sample in load_samples(TASK, limit=limit, tokenizer=lo.tokenizer):
            asked = sample.extra["input"]
            cut = sample.prompt.rindex("\n\n" + asked)
            context = lo.tokenizer.encode(sample.prompt[:cut])
            tails = [sample.prompt[cut:].replace(asked, f"What is the pass key of {n}?")
                     for n in sample.extra["names"]]
            questions = [torch.tensor([lo.tokenizer.encode(t, add_special_tokens=False)]) for t in tails]
            # a byte tokenizer: context then the asked question is the prompt's own ids
            asked_i = sample.extra["asked"]
            assert lo.tokenizer.encode(sample.prompt) == context + questions[asked_i][0].tolist()
            ctx, max_new = torch.tensor([context]), sample.max_new_tokens
            if mode == "single":
                out += [generate(lo.model, lo.method, torch.cat([ctx, q], 1), max_new, chunk_size=preset.chunk_size)
                        .tokens[0] for q in questions]
            elif mode == "multi-request":
                out += [t.tokens for t in multi_request(lo.model, lo.method, ctx, questions, max_new,
                                                        preset.chunk_size)]
            else:
                keys = [sample.prompt.split(f"The pass key of {n} is ")[1][:5] for n in sample.extra["names"]]
                gold = [torch.tensor([lo.tokenizer.encode(f" {k}", add_special_tokens=False)]) for k in keys]
                out += [t.tokens for t in multi_turn(lo.model, lo.method, ctx, questions, max_new, history=gold,
                                                     chunk_size=preset.chunk_size)]
    return out


@pytest.mark.parametrize("method", ["full", "swa", "ahn-gdn", "snapkv", "tova"])
def test_records_equal_the_engine_functions(method, tmp_path):
    for mode in ("multi-turn", "multi-request") + (("single",) if method in ("full", "snapkv") else ()):
        out = tmp_path / mode
        run_shared_preset(_preset(method), RunSettings(tasks=TASK, output=out, limit=1, device="cpu",
                                                       dtype="float32", progress=False), out, mode)
        records = load_run(out).records
        assert [r["turn"] for r in records] == [0, 1, 2, 3] and {r["mode"] for r in records} == {mode}
        assert [r["key"] for r in records] == [f"synthetic/passkey_k4|2k|0#t{i}" for i in range(4)]
        assert [r["generated_ids"] for r in records] == _reference(method, mode, 1), (method, mode)
        assert all(r["status"] == "ok" and r["score"] in (0.0, 1.0) for r in records)
        if method == "full":  # the tiny base answers every labelled key with full attention
            assert [r["score"] for r in records] == [1.0] * 4, mode
        assert json.loads((out / "turns.json").read_text())["rows"][0]["n"] == 1


def test_multi_turn_with_the_models_own_answers(tmp_path):
    preset = _preset("swa")
    run_shared_preset(preset, RunSettings(tasks=TASK, output=tmp_path, limit=1, device="cpu", dtype="float32",
                                          progress=False), tmp_path, "multi-turn", "own")
    records = load_run(tmp_path).records
    with loaded(preset, "cpu", "float32") as lo:
        sample = load_samples(TASK, limit=1, tokenizer=lo.tokenizer)[0]
        shared = shared_of(sample)
        ctx = torch.tensor([lo.tokenizer.encode(shared.context)])
        questions = [torch.tensor([lo.tokenizer.encode(q.text, add_special_tokens=False)]) for q in shared.questions]
        want = [t.tokens for t in multi_turn(lo.model, lo.method, ctx, questions, sample.max_new_tokens,
                                             chunk_size=preset.chunk_size)]
    assert [r["generated_ids"] for r in records] == want
    # the prompt of turn 2 counts the first question and the model's own first answer
    assert records[1]["prompt_tokens"] == ctx.shape[1] + questions[0].shape[1] + len(want[0]) + \
        questions[1].shape[1]


def _cmd(out: Path, mode: str) -> list[str]:
    return ["run", "--model", str(BASE), "--method", "snapkv", "--sinks", "32", "--window", "480", "--tasks", TASK,
            "--limit", "3", "--shared-context", mode, "--device", "cpu", "--output", str(out)]


def test_a_partly_recorded_sample_resumes_at_its_next_turn(tmp_path):
    clean, cut = tmp_path / "clean", tmp_path / "cut"
    assert main(_cmd(clean, "multi-turn")) == 0
    assert main(_cmd(cut, "multi-turn")) == 0
    lines = (cut / "samples.jsonl").read_text().splitlines(keepends=True)
    (cut / "samples.jsonl").write_text("".join(lines[:6]))  # sample 0 whole, sample 1 at turns 0 and 1
    kept = [json.loads(x) for x in lines[:6]]
    assert main(_cmd(cut, "multi-turn")) == 0
    after = [json.loads(x) for x in (cut / "samples.jsonl").read_text().splitlines()]
    assert after[:6] == kept and len(after) == len({r["key"] for r in after}) == 12  # nothing recomputed
    assert _strip(load_run(cut).records) == _strip(load_run(clean).records)


def test_kill_9_then_resume_equals_uninterrupted(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert main(_cmd(clean, "multi-request")) == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "harness", *_cmd(killed, "multi-request")]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = killed / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not samples.exists() or samples.read_text().count("\n") < 2):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = samples.read_text().count("\n")
    assert 2 <= partial < 12, "the kill must land mid-run"
    assert main(_cmd(killed, "multi-request")) == 0  # the same command resumes (here in-process: the code is the same)
    lines = [json.loads(x) for x in samples.read_text().splitlines() if x.strip()]
    assert len(lines) == len({r["key"] for r in lines}) == 12
    assert _strip(load_run(killed).records) == _strip(load_run(clean).records)


def test_another_mode_in_the_same_folder_is_refused(tmp_path, capsys):
    assert main(_cmd(tmp_path, "multi-request")) == 0
    capsys.readouterr()
    assert main(_cmd(tmp_path, "multi-turn")) == 2
    assert "shared_context" in capsys.readouterr().err


def test_a_task_without_questions_is_one_error_line(tmp_path, capsys):
    argv = _cmd(tmp_path / "x", "multi-turn")
    argv[argv.index(TASK)] = "synthetic:passkey@512"
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and err[0].startswith("error: synthetic/passkey: no questions")
    assert "synthetic:passkey_k4" in err[0]
    assert not (tmp_path / "x").exists()  # refused before anything is written


def test_a_samples_own_turns_are_its_questions():
    sample = Sample(task="scbench/kv", id="0", prompt="CONTEXT", answers=["a"], level=None,
                    extra={"turns": [{"input": "Q1?", "answers": ["a"]}, {"input": "Q2?", "answers": ["b", "c"]}]})
    shared = shared_of(sample)
    assert shared.context == "CONTEXT"
    assert [(q.text, q.answers, q.scorer, q.history) for q in shared.questions] == [
        ("Q1?", ["a"], "scbench/kv", " a"), ("Q2?", ["b", "c"], "scbench/kv", " b")]
    bad = Sample(task="scbench/kv", id="1", prompt="C", answers=["a"], level=None, extra={"turns": [{"input": "Q"}]})
    with pytest.raises(ValueError, match=r"extra\['turns'\]\[0\] must be"):
        shared_of(bad)


def test_turn_table_by_hand():
    recs = [{"turn": 0, "bucket": "2k", "score": 1.0}, {"turn": 0, "bucket": "4k", "score": 0.0},
            {"turn": 1, "bucket": "2k", "score": 0.5}, {"turn": 1, "bucket": "2k", "score": None, "status": "failed"}]
    rows = {(r["turn"], r["bucket"]): (r["score"], r["n"]) for r in turn_table(recs)}
    assert rows == {(0, "2k"): (1.0, 1), (0, "4k"): (0.0, 1), (0, "all"): (0.5, 2), (1, "2k"): (0.5, 1),
                    (1, "all"): (0.5, 1)}


def test_passkey_k_cut_reassembles_the_asked_prompt_and_finds_every_key():
    """Asked of the sample's own name, context + question is the sample's prompt, token for token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BASE)
    for sample in load_samples("synthetic:passkey_k4@1k", limit=3, tokenizer=tokenizer):
        shared = shared_of(sample)
        asked = shared.questions[sample.extra["asked"]]
        assert shared.context + asked.text == sample.prompt
        assert asked.answers == sample.answers and len({q.answers[0] for q in shared.questions}) == 4
        assert [q.text.count(n) for q, n in zip(shared.questions, sample.extra["names"], strict=True)] == [1] * 4
        assert tokenizer.encode(shared.context) + tokenizer.encode(asked.text, add_special_tokens=False) == \
            tokenizer.encode(sample.prompt)


def test_settings_that_do_not_apply_are_refused(tmp_path, capsys):
    assert main([*_cmd(tmp_path / "x", "multi-request"), "--chat-template", "on"]) == 2
    err = capsys.readouterr().err
    assert "error: --shared-context feeds the context and questions as raw text" in err
    assert "--chat-template on" in err and not (tmp_path / "x").exists()


def test_questions_of_one_record_are_one_context():
    """The scbench form: one sample per question, prompt = context + separator + that question."""
    turns = [{"input": "Key A?", "answers": ["1"]}, {"input": "Key B?", "answers": ["2"]}]
    samples = [Sample(task="scbench/kv", id=f"r0-{i}", level="4k", prompt="CTX\n\n" + t["input"], answers=t["answers"],
                      extra={"turns": turns, "turn": i, "context_chars": 3, "context_id": "r0"})
               for i, t in enumerate(turns)]
    other = Sample(task="scbench/kv", id="r1-0", level="4k", prompt="OTHER\n\nKey A?", answers=["1"],
                   extra={"turns": turns[:1], "turn": 0, "context_chars": 5, "context_id": "r1"})
    kept = contexts([*samples, other])
    assert [s.id for s in kept] == ["r0-0", "r1-0"]
    shared = shared_of(samples[1])
    assert shared.context == "CTX" and [q.text for q in shared.questions] == ["\n\nKey A?", "\n\nKey B?"]
    assert shared.context + shared.questions[1].text == samples[1].prompt
    broken = Sample(task="scbench/kv", id="x", level="4k", prompt="CTX\n\nKey B?", answers=["2"],
                    extra={"turns": turns, "turn": 0, "context_chars": 3, "context_id": "x"})
    with pytest.raises(ValueError, match="must cut the prompt"):
        shared_of(broken)
