"""Task selection strings, loading through the registry, per-task settings, and the errors for bad names."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from tasks import registry
from tasks.registry import (
    Selection,
    data_provenance,
    load_samples,
    parse_length,
    parse_task_spec,
    task_settings,
)
from tasks.sample import Sample


def test_parse_task_spec() -> None:
    got = parse_task_spec("lveval:factrecall_en@128k,infinitebench:passkey, lveval ,lveval@16k+32k")
    assert got == [
        Selection("lveval", "factrecall_en", ("128k",)),
        Selection("infinitebench", "passkey", None),
        Selection("lveval", None, None),
        Selection("lveval", None, ("16k", "32k")),
    ]
    assert parse_task_spec("lveval/factrecall_en") == [Selection("lveval", "factrecall_en")]
    assert parse_task_spec("ahn-paper/lveval/factrecall_en") == [Selection("ahn-paper", "lveval/factrecall_en")]
    assert parse_task_spec("ahn-paper:lveval@128k")[0].levels == ("128k",)
    assert str(got[0]) == "lveval:factrecall_en@128k"
    assert parse_task_spec("longbench")[0] == Selection("longbench")


@pytest.mark.parametrize(
    ("spec", "bad", "valid"),
    [
        ("lveval:factrecal_en", "'factrecal_en'", "factrecall_en"),
        ("lveval:factrecall_en@100k", "'100k'", "128k"),
        ("lveval@1k", "'1k'", "256k"),
        ("infinitbench:passkey", "'infinitbench'", "infinitebench"),
        ("infinitebench:pass", "'pass'", "kv_retrieval"),
        ("infinitebench:passkey@128k", "'128k'", "no levels"),
        ("longbench:gov_report", "'gov_report'", "qmsum"),
        ("ahn-paper:longbook_qa_eng@128k", "'128k'", "ahn-paper:lveval"),
        ("ahn-paper:ruler", "'ruler'", "longbook_qa_chn"),
        ("synthetic:passkey@4q", "'4q'", "4k"),
        ("synthetic:nope@4k", "'nope'", "passkey"),
    ],
)
def test_bad_names_raise_value_error_naming_them(spec: str, bad: str, valid: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_task_spec(spec)
    assert bad in str(err.value) and valid in str(err.value)


def test_empty_spec() -> None:
    with pytest.raises(ValueError, match="no task selected"):
        parse_task_spec(" , ")


def test_parse_length() -> None:
    assert parse_length("4k") == 4096 and parse_length("128K") == 131_072
    assert parse_length("3000") == 3000 and parse_length("1m") == 1 << 20


def test_load_samples_across_families(tmp_path: Path) -> None:
    (tmp_path / "factrecall_en_16k.jsonl").write_text(
        "".join(json.dumps({"input": "Q", "context": f"C{i}", "answers": ["A"]}) + "\n" for i in range(4))
    )
    (tmp_path / "passkey.jsonl").write_text(
        "".join(json.dumps({"id": i, "context": "n", "input": "What?", "answer": [f"{i:05d}"]}) + "\n" for i in range(3))
    )
    samples = load_samples("lveval:factrecall_en@16k,infinitebench:passkey,lveval:factrecall_en@16k",
                           data_dir=tmp_path, limit=2)
    assert [s.key for s in samples] == [
        "lveval/factrecall_en|16k|0", "lveval/factrecall_en|16k|1", "infinitebench/passkey||0",
        "infinitebench/passkey||1"]  # duplicates dropped, limit per task and level
    prov = data_provenance(samples)
    assert prov["infinitebench/passkey"] == [{"origin": "local", "path": str(tmp_path / "passkey.jsonl")}]
    assert list(prov) == ["lveval/factrecall_en", "infinitebench/passkey"]
    chat = load_samples([Selection("infinitebench", "passkey")], data_dir=tmp_path, prompt_set="chat")
    assert chat[0].extra["prompt_set"] == "chat" and task_settings(chat[0]).chat_template is True
    with pytest.raises(ValueError, match="limit"):
        load_samples("lveval", limit=0)


def test_task_settings() -> None:
    t, chat, gen = task_settings("lveval/factrecall_en")
    assert (t.kind, t.max_tokens, chat, gen) == ("middle", 15_500, False, 16)
    t, chat, gen = task_settings("ahn-paper/lveval/hotpotwikiqa_mixup")
    assert (t.max_tokens, chat, gen) == (256_000, True, 64)
    t, chat, gen = task_settings("ahn-paper/longbook_qa_eng")
    assert (t.kind, t.budget, chat, gen) == ("left", 127_744, True, 256)
    t, chat, gen = task_settings("infinitebench/math_calc")
    assert (t.style, t.max_tokens, chat, gen) == ("infinitebench", 131_072, False, 30_000)
    assert task_settings("longbench/triviaqa").chat_template is False
    for bad, msg in [("nope/x", "'nope'"), ("lveval", "needs a name"), ("lveval/x", "'x'"),
                     ("ahn-paper/lveval", "group")]:
        with pytest.raises(ValueError, match=msg):
            task_settings(bad)


def test_synthetic_is_delegated(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []

    def fake_load(name, lengths, n_per_length, seed, tokenizer):
        calls.append((name, lengths, n_per_length, seed, tokenizer))
        return [Sample(f"synthetic/{name}", str(i), f"{n // 1024}k", "p", ["a"]) for n in lengths
                for i in range(n_per_length)]

    fake = types.ModuleType("tasks.synthetic")
    fake.TASKS = ("passkey", "kv_retrieval")
    fake.load = fake_load
    monkeypatch.setitem(sys.modules, "tasks.synthetic", fake)
    got = load_samples("synthetic:passkey@4k+8k", limit=2, tokenizer="TOK", seed=7)
    assert calls == [("passkey", [4096, 8192], 2, 7, "TOK")]
    assert len(got) == 4 and got[0].level == "4k"
    calls.clear()
    load_samples("synthetic@1k")
    assert [c[0] for c in calls] == ["passkey", "kv_retrieval"]
    assert calls[0][2] == registry.DEFAULT_SYNTHETIC_N_PER_LENGTH
    with pytest.raises(ValueError, match="needs lengths"):
        load_samples("synthetic:passkey")
    s = task_settings(Sample("synthetic/passkey", "0", "4k", "p", ["a"], max_new_tokens=9))
    assert (s.truncation.kind, s.chat_template, s.max_new_tokens) == ("none", False, 9)


def test_real_synthetic_package_if_present() -> None:
    """With the real generators (`tasks.synthetic`), a byte-counted 1k passkey sample comes back."""
    pytest.importorskip("tasks.synthetic")
    got = load_samples("synthetic:passkey@1k", limit=1, seed=0)
    assert len(got) == 1 and got[0].task == "synthetic/passkey" and got[0].level == "1k"
