"""Training corpus for the tiny LM: determinism, lengths, and where the answers start."""

from __future__ import annotations

import re
from itertools import islice

import pytest

from tasks.synthetic.corpus import DEFAULT_TASKS, TrainingDoc, training_documents


def docs(seed: int, n: int = 60, **kw) -> list[TrainingDoc]:
    return list(training_documents(seed, 600, 3000, n_docs=n, **kw))


def test_same_seed_same_documents_other_seed_other_documents():
    a, b, c = docs(0), docs(0), docs(1)
    assert a == b
    assert [d.text for d in a] != [d.text for d in c]


def test_endless_stream_and_task_mix():
    stream = training_documents(3, 600, 1200)
    first = list(islice(stream, 150))
    assert len(first) == 150
    assert {d.task for d in first} == set(DEFAULT_TASKS)
    assert all(d.text.isascii() for d in first)


def test_lengths_follow_the_drawn_range():
    for d in docs(2, 80):
        assert 600 <= d.n_tokens <= 3000
        total = len(d.text.encode())
        assert 0.9 * d.n_tokens <= total <= 1.1 * d.n_tokens + 80, (d.task, d.n_tokens, total)


def test_answer_starts_after_prompt_and_is_recoverable():
    seen = set()
    for d in docs(4, 120):
        prompt, answer = d.text[: d.answer_start], d.text[d.answer_start :]
        assert d.text.endswith("\n")
        if d.task == "prose":
            assert d.answer_start == len(d.text)
            continue
        assert answer.strip(), d.task
        seen.add(d.task)
        if d.task == "passkey":
            key = re.search(r"The pass key is (\d{5})\. Remember it\.", prompt).group(1)
            assert prompt.endswith("The pass key is") and answer == f" {key}\n"
        elif d.task == "number_string":
            key = re.search(r"The sequence of digits is (\d{10})\. Remember", prompt).group(1)
            assert answer == f" {key}\n"
        elif d.task == "kv_retrieval":
            key = re.search(r'\nKey: "([0-9a-f-]+)"\n', prompt).group(1)
            assert f'"{key}": "{answer.strip()}"' in prompt
        elif d.task.startswith("niah_"):
            for value in re.findall(r"\d{7}", answer):
                assert f"is: {value}." in prompt
        elif d.task == "math_calc":
            assert prompt.endswith("Values:") and answer.startswith(" [")
        elif d.task == "code_run":
            assert re.fullmatch(r" -?\d+\n", answer)
        elif d.task == "math_find":
            assert re.fullmatch(r"\d+(\.\d)?\n", answer)
    assert seen >= {"passkey", "kv_retrieval", "math_calc", "code_run", "niah_single"}


def test_task_selection_and_weights():
    only = docs(5, 20, tasks=("passkey", "prose"), weights=(1.0, 0.0))
    assert {d.task for d in only} == {"passkey"}
    with pytest.raises(ValueError, match="unknown corpus task"):
        list(training_documents(0, 600, 900, tasks=("bogus",), n_docs=1))
    with pytest.raises(ValueError):
        list(training_documents(0, 900, 600, n_docs=1))


def test_short_targets_still_give_documents():
    for d in training_documents(6, 50, 120, n_docs=30):
        assert d.text and 0 < d.answer_start <= len(d.text)
