"""LongBench six (AHN protocol) and the AHN-paper variants on small files in the published layouts."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tasks import ahn_paper, longbench
from tasks.byte_tokenizer import build_byte_tokenizer
from tasks.prompting import Truncation, prepare
from tasks.prompts import AHN_INFINITEBENCH_PROMPT, LONGBENCH_PROMPTS


def _lb(i: int, lang: str = "en") -> dict:
    return {"input": f"q{i}", "context": f"ctx {i} {{x}}", "answers": [f"a{i}"], "length": 10 + i,
            "all_classes": None, "language": lang, "_id": f"id{i}", "dataset": "d"}


def _jsonl(recs: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)


def test_longbench_zip_and_folder_layouts(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as zf:
        zf.writestr("data/qmsum.jsonl", _jsonl([_lb(0), _lb(1)]))
        zf.writestr("data/triviaqa.jsonl", _jsonl([_lb(2)]))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dureader.jsonl").write_text(_jsonl([_lb(3, "zh")]), encoding="utf-8")
    samples = longbench.load(["qmsum", "dureader", "triviaqa"], data_dir=tmp_path, limit=5)
    assert [(s.task, s.id) for s in samples] == [
        ("longbench/qmsum", "id0"), ("longbench/qmsum", "id1"), ("longbench/dureader", "id3"),
        ("longbench/triviaqa", "id2")]
    q = samples[0]
    assert q.prompt == LONGBENCH_PROMPTS["qmsum"].format(context="ctx 0 {x}", input="q0")
    assert q.answers == ["a0"] and q.max_new_tokens == 500 and q.extra["data"]["member"] == "data/qmsum.jsonl"
    assert q.extra["data"]["prompts"] == "builtin (AHN copy of dataset2prompt.json)"
    assert samples[2].language == "zh" and samples[2].extra["data"]["origin"] == "local"


def test_longbench_prompt_override_from_data_dir(tmp_path: Path) -> None:
    (tmp_path / "hotpotqa.jsonl").write_text(_jsonl([_lb(0)]), encoding="utf-8")
    (tmp_path / "dataset2prompt.json").write_text(json.dumps({"hotpotqa": "P: {context} | {input}"}), encoding="utf-8")
    (s,) = longbench.load(["hotpotqa"], data_dir=tmp_path)
    assert s.prompt == "P: ctx 0 {x} | q0"
    assert s.extra["data"]["prompts"] == str(tmp_path / "dataset2prompt.json")


def test_longbench_settings() -> None:
    s = longbench.settings("narrativeqa")
    assert (s.truncation.kind, s.truncation.max_tokens, s.truncation.budget, s.chat_template, s.max_new_tokens) == (
        "left", 32_000, 32_000 - 128, True, 128)
    assert longbench.settings("triviaqa").chat_template is False
    with pytest.raises(ValueError, match=r"unknown LongBench task 'gov_report'.*narrativeqa"):
        longbench.settings("gov_report")


def test_ahn_paper_variants(tmp_path: Path) -> None:
    ib = tmp_path / "infinitebench"
    ib.mkdir()
    rec = {"id": 3, "context": "The book.", "input": "Who?", "answer": ["Ann", "Anna"], "options": []}
    (ib / "longbook_qa_chn.jsonl").write_text(json.dumps(rec) + "\n", encoding="utf-8")
    lv = tmp_path / "lveval"
    lv.mkdir()
    lrec = {"input": "Q?", "context": "C.", "answers": ["A"], "length": 5, "confusing_facts": "x"}
    (lv / "factrecall_en_128k.jsonl").write_text(json.dumps(lrec) + "\n", encoding="utf-8")
    (tmp_path / "longbench").mkdir()
    (tmp_path / "longbench" / "musique.jsonl").write_text(_jsonl([_lb(0)]), encoding="utf-8")

    samples = ahn_paper.load(["longbook_qa_chn", "lveval/factrecall_en", "longbench/musique"], data_dir=tmp_path)
    by_task = {s.task: s for s in samples}
    assert set(by_task) == {"ahn-paper/longbook_qa_chn", "ahn-paper/lveval/factrecall_en", "longbench/musique"}
    z = by_task["ahn-paper/longbook_qa_chn"]
    assert z.prompt == AHN_INFINITEBENCH_PROMPT.format(context="The book.", input="Who?")  # English prompt for zh
    assert z.language == "zh" and z.max_new_tokens == 256 and z.answers == ["Ann", "Anna"] and z.id == "3"
    assert z.extra["benchmark_task"] == "infinitebench/longbook_qa_chn"
    f = by_task["ahn-paper/lveval/factrecall_en"]
    assert f.level == "128k" and f.extra["benchmark_task"] == "lveval/factrecall_en" and f.max_new_tokens == 16

    st = ahn_paper.settings("longbook_qa_eng")
    assert (st.truncation.kind, st.truncation.max_tokens, st.truncation.budget, st.chat_template) == (
        "left", 128_000, 127_744, True)
    lvst = ahn_paper.settings("lveval/factrecall_en")
    assert (lvst.truncation.kind, lvst.truncation.max_tokens, lvst.chat_template) == ("middle", 256_000, True)
    with pytest.raises(ValueError, match="unknown ahn-paper task 'longbook_sum_eng'"):
        ahn_paper.load(["longbook_sum_eng"], data_dir=tmp_path)
    with pytest.raises(ValueError, match="no level '16k'"):
        ahn_paper.load(["lveval"], data_dir=tmp_path, levels=["16k"])


def test_ahn_paper_left_truncation_loses_the_instruction() -> None:
    tok = build_byte_tokenizer()
    rec = {"id": 0, "context": "word " * 400, "input": "Who?", "answer": ["x"]}
    s = ahn_paper.ib_record_to_sample(rec, "longbook_qa_eng", 0)
    trunc = Truncation("left", 1000, reserve=256)
    p = prepare(s, tok, trunc, chat_template=True)
    assert p.truncated and p.prompt_tokens_before == len(s.prompt.encode())
    assert "Read the book below" not in p.text
    assert p.text.endswith("Question: Who?\n\nBe very concise.<|im_end|>\n<|im_start|>assistant\n")
    assert p.prompt_tokens_after == 744 + 19
