"""LV-Eval loader on small files in each published layout (Hub zip, unzipped folder, flat official files)."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import pytest

from tasks import lveval
from tasks.prompts import LVEVAL_DATASET_PROMPT
from tasks.sample import Sample


def _rec(i: int, dataset: str, variant: str = "official", keywords: str | None = "Beethoven") -> dict:
    rec = {
        "input": f"Question {i}?",
        "context": f"Context {{braces}} of record {i}. " * 3,
        "answers": [f"Answer {i}", "alias"],
        "length": 123 + i,
        "dataset": dataset,
        "language": "en",
    }
    if variant == "official":
        rec["answer_keywords"] = keywords
        rec["confusing_facts"] = ["David Beckham"]
    else:
        rec["gold_ans"] = keywords
        rec["distractor"] = ["David Beckham"]
    return rec


def _jsonl(recs: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)


def _zip(path: Path, dataset: str, levels: dict[str, list[dict]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dataset}/", "")
        for lv, recs in levels.items():
            zf.writestr(f"{dataset}/{dataset}_{lv}.jsonl", _jsonl(recs))
    return path


def test_hub_zip_layout_both_field_names(tmp_path: Path) -> None:
    _zip(tmp_path / "hotpotwikiqa_mixup.zip", "hotpotwikiqa_mixup",
         {"16k": [_rec(0, "h"), _rec(1, "h", "aliases")], "128k": [_rec(2, "h", "aliases")]})
    samples = lveval.load(["hotpotwikiqa_mixup"], ["16k", "128k"], data_dir=tmp_path)
    assert [(s.level, s.id) for s in samples] == [("16k", "0"), ("16k", "1"), ("128k", "0")]
    s0, s1 = samples[0], samples[1]
    assert isinstance(s0, Sample) and s0.task == "lveval/hotpotwikiqa_mixup"
    assert s0.prompt == LVEVAL_DATASET_PROMPT["hotpotwikiqa_mixup"].format(
        context=_rec(0, "h")["context"], input="Question 0?"
    )
    assert "{braces}" in s0.prompt  # the context is data, never a format string
    assert s0.prompt.endswith("Question: Question 0?\nAnswer:")
    assert s0.answers == ["Answer 0", "alias"]
    assert s0.max_new_tokens == 64 and s0.language == "en"
    for s in (s0, s1):  # both field-name variants land under the dataset names
        assert s.extra["answer_keywords"] == "Beethoven"
        assert s.extra["confusing_facts"] == ["David Beckham"]
    assert s0.extra["metric"] == "qa_f1_score_with_gold_ans" and s0.extra["length"] == 123
    assert s0.extra["data"]["member"] == "hotpotwikiqa_mixup/hotpotwikiqa_mixup_16k.jsonl"
    assert Sample.from_dict(json.loads(json.dumps(s0.to_dict()))) == s0


def test_flat_and_unzipped_layouts_and_limit(tmp_path: Path) -> None:
    (tmp_path / "factrecall_zh_32k.jsonl").write_text(_jsonl([_rec(i, "f") for i in range(5)]), encoding="utf-8")
    (tmp_path / "cmrc_mixup").mkdir()
    (tmp_path / "cmrc_mixup" / "cmrc_mixup_32k.jsonl").write_text(_jsonl([_rec(0, "c")]), encoding="utf-8")
    samples = lveval.load(["factrecall_zh", "cmrc_mixup"], ["32k"], data_dir=tmp_path, limit=3)
    assert [s.task for s in samples] == ["lveval/factrecall_zh"] * 3 + ["lveval/cmrc_mixup"]
    fz = samples[0]
    assert fz.language == "zh" and fz.max_new_tokens == 16
    assert fz.prompt.startswith("请基于给定的文章回答下述问题。\n\n文章：Context")
    assert fz.prompt.endswith("问题：Question 0?\n回答：")
    assert samples[-1].extra["data"] == {"origin": "local", "path": str(tmp_path / "cmrc_mixup" / "cmrc_mixup_32k.jsonl")}


def test_missing_level_in_zip(tmp_path: Path) -> None:
    _zip(tmp_path / "lic_mixup.zip", "lic_mixup", {"16k": [_rec(0, "l")]})
    with pytest.raises(FileNotFoundError, match="lic_mixup_64k.jsonl"):
        lveval.load(["lic_mixup"], ["64k"], data_dir=tmp_path)


def test_empty_keywords_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recs = [_rec(0, "x", keywords=""), _rec(1, "x", keywords=None), _rec(2, "x")]
    (tmp_path / "loogle_CR_mixup_64k.jsonl").write_text(_jsonl(recs), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="tasks.lveval"):
        samples = lveval.load(["loogle_CR_mixup"], ["64k"], data_dir=tmp_path)
    assert len(samples) == 3
    assert "2 of 3 records have empty answer_keywords" in caplog.text and "loogle_CR_mixup_64k" in caplog.text


def test_bad_names_and_settings() -> None:
    with pytest.raises(ValueError, match=r"unknown LV-Eval dataset 'factrecall'.*factrecall_en"):
        lveval.load(["factrecall"], ["16k"])
    with pytest.raises(ValueError, match=r"unknown LV-Eval level '100k'.*256k"):
        lveval.load(["factrecall_en"], ["100k"])
    off = lveval.settings("factrecall_en")
    assert (off.truncation.kind, off.truncation.max_tokens, off.chat_template, off.max_new_tokens) == (
        "middle", 15_500, False, 16)
    paper = lveval.settings("dureader_mixup", "paper")
    assert (paper.truncation.max_tokens, paper.chat_template, paper.max_new_tokens) == (256_000, True, 64)
    assert lveval.split_config("factrecall_en_128k") == ("factrecall_en", "128k")
    assert len(lveval.DATASETS) == 11 and sum(v == "zh" for v in lveval.LANGUAGE.values()) == 5
