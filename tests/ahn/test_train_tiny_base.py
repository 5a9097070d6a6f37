"""The tiny world's base pretraining and the end-to-end script (quick mode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ahn.train.config import ConfigError
from ahn.train.tiny_base import (
    PretrainBatches,
    TinyBaseConfig,
    eval_items,
    load_tiny_config,
    model_config,
    pretrain,
    rope_theta_of,
    stationary_pairs,
)

REPO = Path(__file__).resolve().parents[2]
MICRO = ["hidden_size=32", "intermediate_size=64", "num_layers=1", "num_heads=2", "num_kv_heads=1", "head_dim=16",
         "seq_lens=[128]", "tokens_per_step=512", "steps=6", "eval_every=3", "eval_lengths=[128]", "eval_samples=2",
         "log_every=2", "warmup_steps=2"]


def test_rope_keeps_stationary_channels_up_to_8x_the_training_length():
    cfg = model_config(TinyBaseConfig())
    assert rope_theta_of(cfg) == 1e6
    assert stationary_pairs(1e6, 64, 2048) == 12 and stationary_pairs(1e6, 64, 8 * 2048) == 7
    assert stationary_pairs(auto_small := 393.0, 64, 2048) == 0, auto_small  # why not a tiny theta
    assert (cfg.vocab_size, cfg.eos_token_id, cfg.pad_token_id, cfg.head_dim) == (259, 258, 256, 64)


def test_batches_are_deterministic_and_weight_answers():
    cfg = load_tiny_config(None, MICRO + ["answer_weight=3.0", "tasks=[\"passkey\"]", "seq_lens=[512]", "tokens_per_step=2048"])
    a, b = PretrainBatches(cfg)[5], PretrainBatches(cfg)[5]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    ids, tgt, w = a
    assert ids.shape == (4, 512) and tgt.shape == ids.shape
    assert (w == 3.0).any() and (w == 1.0).any()
    assert ((tgt == -100) == (w == 0)).all()


def test_pretrain_writes_an_hf_folder(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    summary = pretrain(load_tiny_config(None, MICRO + [f"output_dir={tmp_path}"]), echo=lambda s: None)
    assert summary["steps_done"] == 6 and set(summary["accuracy"]) == {
        "kv_retrieval@128", "number_string@128", "passkey@128"}
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "train_log.jsonl",
                 "eval.json", "pretrain_config.json"):
        assert (tmp_path / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path))
    assert model.dtype == torch.bfloat16 and model.config.model_type == "qwen2"
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    assert tok.encode("ab", add_special_tokens=False) == [97, 98]
    gen = GenerationConfig.from_pretrained(str(tmp_path))
    assert gen.eos_token_id == 258 and gen.repetition_penalty == 1.0 and not gen.do_sample
    rows = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert any("eval" in r for r in rows) and any("tokens_per_s" in r for r in rows)


def test_eval_items_are_held_out_and_sized():
    items = eval_items(["passkey"], [256], 3, seed=0)
    assert len(items) == 3 and all(len(it.ids) <= 256 + 8 for it in items)
    assert all(0 < it.answer_start < len(it.ids) for it in items)


def test_round2_base_config_continues_the_committed_base():
    cfg = load_tiny_config(str(REPO / "ahn" / "train" / "configs" / "tiny_base_round2.json"), [])
    assert cfg.init_from == "leaderboards/tiny/base" and "kv_retrieval" in cfg.tasks and "passkey_k16" in cfg.tasks
    assert (cfg.hidden_size, cfg.num_layers, cfg.rope_theta) == (256, 4, 1e6)  # the committed base's shape


def test_round2_kv_stage_continues_the_round2_base_on_kv_alone():
    cfg = load_tiny_config(str(REPO / "ahn" / "train" / "configs" / "tiny_base_round2_kv.json"), [])
    assert cfg.init_from == "leaderboards/tiny/round2/base" and cfg.tasks == ["kv_retrieval"]
    assert max(cfg.seq_lens) <= 1024 and cfg.kv_queries > 0 and cfg.kv_query_prob == 1.0  # short rows, many answers
    assert (cfg.hidden_size, cfg.num_layers, cfg.rope_theta) == (256, 4, 1e6)  # the second base's shape


def test_bad_tiny_config():
    with pytest.raises(ConfigError, match="num_heads=3 must be a multiple"):
        load_tiny_config(None, ["num_heads=3"])
    with pytest.raises(ConfigError, match="unknown corpus task"):
        load_tiny_config(None, ["tasks=[\"poems\"]"])


@pytest.mark.slow  # ~22 s: pretraining runs above, AHN training in tests/ahn/test_train.py
def test_tiny_world_quick_end_to_end(tmp_path):
    out = tmp_path / "world"
    proc = subprocess.run([sys.executable, "-m", "studies.train_tiny_world", "--quick", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    world = json.loads((out / "world.json").read_text())
    assert set(world["check"]["accuracy"]) == {"full", "swa", "ahn-gdn", "ahn-dn", "ahn-mamba2"}
    for cell in ("gdn", "dn", "mamba2"):
        assert (out / f"ahn-{cell}" / "model.safetensors").is_file()
        assert (out / f"ahn-{cell}" / "train_log.jsonl").is_file()


def _answers(ids: torch.Tensor, w: torch.Tensor, answer_weight: float) -> list[str]:
    """The answer bytes of each row (targets weighted as answers), one string per answer run."""
    out = []
    for row in range(ids.shape[0]):
        run = []
        for p in range(ids.shape[1] - 1):
            if w[row, p] == answer_weight:
                run.append(int(ids[row, p + 1]))
            elif run:
                out.append(bytes(b for b in run if b < 256).decode())
                run = []
        if run:
            out.append(bytes(b for b in run if b < 256).decode())
    return out


@pytest.mark.parametrize("task", ["passkey", "number_string", "kv_retrieval"])
def test_rows_keep_every_answer_whole_and_end_it_with_eos(task):
    # a row holds a prompt of at most L - answer_room bytes, so the completion, its newline and <|im_end|> fit:
    # a cut answer followed by <|im_end|> would teach the model to stop where the evaluation asks it to answer
    cfg = load_tiny_config(None, MICRO + [f'tasks=["{task}"]', "seq_lens=[512]", "tokens_per_step=4096",
                                          "answer_weight=5.0", "kv_queries=0"])
    data = PretrainBatches(cfg)
    for step in range(4):
        ids, _, w = data[step]
        for row in range(ids.shape[0]):
            text = bytes(int(t) for t in ids[row] if t < 256).decode()
            eos_at = (ids[row] == data.eos).nonzero().flatten().tolist()
            assert eos_at, "every row ends its document with <|im_end|>"
            answer = _answers(ids[row: row + 1], w[row: row + 1], 5.0)
            assert len(answer) == 1
            completion = answer[0].rstrip("\n")
            if task == "kv_retrieval":
                key = text[text.rindex('Key: "') + 6:][:36]
                assert f'"{key}": "{completion.split()[-1]}"' in text  # the value the JSON holds for the key
            else:
                key = completion.split()[-1]
                assert len(key) >= 5 and key.isdigit() and text.count(key) >= 3  # needle twice + the answer


def test_extra_kv_questions_ask_other_keys_of_the_same_json():
    cfg = load_tiny_config(None, MICRO + ['tasks=["kv_retrieval"]', "seq_lens=[2048]", "tokens_per_step=8192",
                                          "answer_weight=5.0", "kv_queries=6", "kv_query_prob=1.0"])
    ids, _, w = PretrainBatches(cfg)[0]
    for row in range(ids.shape[0]):
        text = bytes(int(t) for t in ids[row] if t < 256).decode()
        answers = [a.strip() for a in _answers(ids[row: row + 1], w[row: row + 1], 5.0)]
        keys = [text[m + 6: m + 42] for m in range(len(text)) if text.startswith('Key: "', m)]
        assert len(answers) == len(keys) >= 3 and len(set(keys)) == len(keys)
        for key, value in zip(keys, answers):
            assert f'"{key}": "{value}"' in text


def test_length_warmup_adds_lengths_shortest_first():
    cfg = load_tiny_config(None, MICRO + ["seq_lens=[512,128,256]", "steps=300", "length_warmup=0.5"])
    data = PretrainBatches(cfg)
    assert data.lengths_at(0)[0] == [128]
    assert sorted(data.lengths_at(60)[0]) == [128, 256]
    assert sorted(data.lengths_at(149)[0]) == [128, 256, 512] == sorted(data.lengths_at(299)[0])
    assert {data[s][0].shape[1] for s in range(10)} == {128}


def test_a_time_budget_inside_the_length_warmup_is_reported(tmp_path):
    """The warm-up follows steps (batches are a pure function of the step), so a time budget far short of
    `steps` stops while only short rows were drawn: eval.json and the log say so (2026-12-06: a kv stage with
    steps=100000 and a 150 s budget trained on 512-token rows only)."""
    said: list[str] = []
    over = MICRO + ["seq_lens=[128,256]", "tokens_per_step=512", "steps=100", "length_warmup=0.5", "eval_every=50"]
    cut = pretrain(load_tiny_config(None, over + [f"output_dir={tmp_path / 'cut'}", "time_budget_s=0.0"]),
                   echo=said.append)
    assert cut["stop_reason"] == "time_budget" and cut["longest_seq_len_drawn"] == 128
    assert any("never exceeded 128 tokens" in line for line in said)
    done = pretrain(load_tiny_config(None, MICRO + [f"output_dir={tmp_path / 'done'}", "seq_lens=[128,256]",
                                                    "length_warmup=0.5"]), echo=lambda s: None)
    assert "longest_seq_len_drawn" not in done


def test_init_from_continues_from_the_given_weights(tmp_path):
    """A zero-step run saves exactly the weights it started from (bf16 both times); another shape is refused."""
    from transformers import AutoModelForCausalLM

    src = tmp_path / "src"
    pretrain(load_tiny_config(None, MICRO + [f"output_dir={src}", "steps=2"]), echo=lambda s: None)
    cfg = load_tiny_config(None, MICRO + [f"output_dir={tmp_path / 'dst'}", f"init_from={src}", "steps=1",
                                          "lr=0.0", "seed=7", "eval_tasks=[\"passkey_k2\"]", "eval_lengths=[1536]",
                                          "seq_lens=[128]"])
    summary = pretrain(cfg, echo=lambda s: None)
    assert set(summary["accuracy"]) == {"passkey_k2@1536"}
    a = AutoModelForCausalLM.from_pretrained(str(src)).state_dict()
    b = AutoModelForCausalLM.from_pretrained(str(tmp_path / "dst")).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # lr 0: the seed-7 init is gone
    fresh = tmp_path / "fresh"
    pretrain(load_tiny_config(None, MICRO + [f"output_dir={fresh}", "steps=1", "lr=0.0", "seed=7"]), echo=lambda s: None)
    c = AutoModelForCausalLM.from_pretrained(str(fresh)).state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)  # negative control: without init_from the weights differ
    wider = load_tiny_config(None, MICRO + [f"output_dir={tmp_path / 'x'}", f"init_from={src}", "hidden_size=48"])
    with pytest.raises(ConfigError, match="hidden_size 32 \\(config: 48\\)"):
        pretrain(wider, echo=lambda s: None)
    with pytest.raises(ConfigError, match="not an HF model folder"):
        load_tiny_config(None, MICRO + [f"init_from={tmp_path / 'nowhere'}"])
    with pytest.raises(ConfigError, match="unknown eval task.*passkey_k16"):
        load_tiny_config(None, MICRO + ["eval_tasks=[\"prose\"]"])
