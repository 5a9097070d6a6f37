"""InfiniteBench loader: raw jsonl, label types (B2.3), get_answer (B2.4), placeholders (B3), the real
public passkey records."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from tasks import infinitebench
from tasks.byte_tokenizer import build_byte_tokenizer
from tasks.prompting import Truncation, prepare
from tasks.prompts import INFINITEBENCH_CHAT_PROMPTS, INFINITEBENCH_OPEN_PROMPTS

OPTIONS = ["Alice", "Bob", "Carol", "Dave"]
RECORDS: dict[str, list[dict]] = {
    "passkey": [
        {"id": 0, "context": "noise " * 5, "input": "What is the pass key?", "answer": ["01234"], "options": []},
        {"id": 1, "context": "noise", "input": "What is the pass key?", "answer": "98765", "options": []},
    ],
    "kv_retrieval": [
        {"id": 0, "context": 'JSON data:\n{"k1": "v1"}', "input": '\nKey: "k1"\nThe value associated with the '
         'specified key is: ', "answer": ["v1"], "options": []},
    ],
    "longbook_choice_eng": [
        {"id": 7, "context": "book", "input": "Who?", "answer": ["Carol"], "options": OPTIONS},
        {"id": 8, "context": "book", "input": "Who?", "answer": ["Bob", "B"], "options": OPTIONS},
    ],
    "code_debug": [
        {"id": 0, "context": "def f(): pass", "input": "", "answer": "func_b", "options": ["func_a", "func_b", "c", "d"]},
    ],
    "code_run": [
        {"id": 0, "context": "def func_1(x):\n    return x + 2\n", "input": "Please give me the exact number of the "
         "return value of func_1(-3). Your response should end with the sentence 'The return value is:'.",
         "answer": [-1], "options": []},
    ],
    "math_find": [
        {"id": 0, "context": "[1, 2, 3]", "input": "You should answer with only one number, no other words. "
         "The largest number of the list is: ", "answer": [3], "options": []},
        {"id": 1, "context": "[1, 2]", "input": "You should answer with only one number, no other words. "
         "The median number of the list is: ", "answer": [49.5], "options": []},
        {"id": 2, "context": "[1]", "input": "You should answer with only one number, no other words. "
         "The second smallest number of the list is: ", "answer": ["48.0"], "options": []},
    ],
    "math_calc": [
        {"id": 0, "context": "1 + 2 - 1", "input": "", "answer": [[1, 3, 2]], "options": []},
    ],
    "longbook_qa_chn": [
        {"id": 0, "context": "书", "input": "谁？", "answer": ["张三", "张先生"], "options": []},
    ],
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    for task, recs in RECORDS.items():
        (tmp_path / f"{task}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs) + "\n", encoding="utf-8"
        )
    return tmp_path


def _load(data_dir: Path, task: str, **kw):
    return infinitebench.load([task], data_dir=data_dir, **kw)


def test_string_labels_list_and_scalar(data_dir: Path) -> None:
    a, b = _load(data_dir, "passkey")
    assert a.answers == ["01234"] and b.answers == ["98765"]  # leading zero kept, scalar wrapped
    assert a.extra["label"] == ["01234"]
    assert a.prompt == INFINITEBENCH_OPEN_PROMPTS["passkey"].format(context="noise " * 5, input="What is the pass key?")
    assert a.prompt.endswith("What is the pass key?\n\nThe pass key is")
    assert (a.task, a.id, a.level, a.max_new_tokens, a.language) == ("infinitebench/passkey", "0", None, 6, "en")


def test_kv_unwrap(data_dir: Path) -> None:
    (s,) = _load(data_dir, "kv_retrieval")
    assert s.answers == ["v1"] and s.extra["label"] == "v1"


def test_choice_get_answer_and_options(data_dir: Path) -> None:
    s1, s2 = _load(data_dir, "longbook_choice_eng")
    assert s1.answers == ["Carol", "C"] and s2.answers == ["Bob", "B"]
    assert s1.extra["options"] == OPTIONS and s1.id == "7"
    assert "Question: Who?\nA. Alice\nB. Bob\nC. Carol\nD. Dave\n\nThe letter of the correct answer is" in s1.prompt
    (d,) = _load(data_dir, "code_debug")
    assert d.answers == ["func_b", "B"] and d.prompt.endswith("D. d\n\nThe correct option is:")
    with pytest.raises(ValueError, match="not one of the options"):
        infinitebench.get_answer("code_debug", ["zzz"], ["a", "b", "c", "d"])


def test_code_run_placeholders_and_int_label(data_dir: Path) -> None:
    (s,) = _load(data_dir, "code_run")
    assert s.answers == [-1] and isinstance(s.answers[0], int)
    assert s.prompt.startswith("There is a function called func_1 in the following Python code.")
    assert s.prompt.endswith("Please compute the exact value of func_1(-3). The value of func_1(-3) is")
    (c,) = _load(data_dir, "code_run", prompt_set="chat")
    assert "There is a function called named func_1." in c.prompt and c.extra["prompt_set"] == "chat"


def test_math_find_prefix_and_number_types(data_dir: Path) -> None:
    s0, s1, s2 = _load(data_dir, "math_find")
    assert s0.prompt.startswith("What is the largest number in the following list?\n\n[1, 2, 3]\n\nYou should")
    assert s1.prompt.startswith("What is the median number in the following list?")
    assert s2.prompt.startswith("What is the second smallest number in the following list?")
    assert s0.answers == [3] and type(s0.answers[0]) is int
    assert s1.answers == [49.5] and s2.answers == [48.0] and type(s2.answers[0]) is float
    assert s0.max_new_tokens == 3


def test_math_calc_nested_list_and_chinese(data_dir: Path) -> None:
    (m,) = _load(data_dir, "math_calc")
    assert m.answers == [1, 3, 2] and m.max_new_tokens == 30000
    assert m.prompt.endswith("Expression: 1 + 2 - 1\nValues:")
    (z,) = _load(data_dir, "longbook_qa_chn")
    assert z.language == "zh" and z.answers == ["张三", "张先生"]
    assert z.prompt == INFINITEBENCH_OPEN_PROMPTS["longbook_qa_chn"].format(context="书", question="谁？")
    (zc,) = _load(data_dir, "longbook_qa_chn", prompt_set="chat")
    assert zc.prompt == INFINITEBENCH_CHAT_PROMPTS["longbook_qa_chn"].format(context="书", question="谁？")


def test_settings_and_bad_names() -> None:
    s = infinitebench.settings("passkey")
    assert (s.truncation.kind, s.truncation.max_tokens, s.truncation.style, s.chat_template, s.max_new_tokens) == (
        "middle", 131_072, "infinitebench", False, 6)
    assert infinitebench.settings("passkey", "chat").chat_template is True
    with pytest.raises(ValueError, match=r"unknown InfiniteBench task 'pass_key'.*passkey"):
        infinitebench.load(["pass_key"])
    with pytest.raises(ValueError, match=r"unknown InfiniteBench prompt set 'claude'.*open"):
        infinitebench.settings("passkey", "claude")
    assert len(infinitebench.TASKS) == 12


def test_real_public_passkey_records(shared_fixtures: Path, tmp_path: Path) -> None:
    """A few real long-context records from InfiniteBench's early passkey archive (~8k tokens each)."""
    with zipfile.ZipFile(shared_fixtures / "infinitebench" / "passkey_8k-64k.zip") as zf:
        with io.TextIOWrapper(zf.open("passkey_8192.jsonl"), encoding="utf-8") as fh:
            lines = [next(fh) for _ in range(3)]
    (tmp_path / "passkey.jsonl").write_text("".join(lines), encoding="utf-8")
    samples = infinitebench.load(["passkey"], data_dir=tmp_path)
    assert len(samples) == 3 and [s.id for s in samples] == ["0", "1", "2"]
    recs = [json.loads(line) for line in lines]
    for s, r in zip(samples, recs):
        assert s.answers == [r["answer"]] and len(r["answer"]) == 5 and r["answer"].isdigit()
        assert s.prompt.startswith("There is an important info hidden inside a lot of irrelevant text.")
        assert f"The pass key is {r['answer']}. Remember it." in s.prompt
        assert s.prompt.endswith("\n\nWhat is the pass key?\n\nThe pass key is")
        assert s.extra["length"] == r["len"]
    # truncated to 4,000 byte tokens the InfiniteBench way: head and tail kept, the question survives
    tok = build_byte_tokenizer()
    s = samples[0]
    p = prepare(s, tok, Truncation("middle", 4000, style="infinitebench"), False)
    assert p.prompt_tokens_before == len(s.prompt.encode()) > 4000
    assert p.prompt_tokens_after == 4000 and p.text.endswith("The pass key is")
