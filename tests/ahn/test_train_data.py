"""Training data: chat label masking, JSONL validation, the Hub loader offline, the synthetic source, batching."""

from __future__ import annotations

import json

import pytest

from ahn.train.data import (
    IGNORE,
    DataError,
    HubChatSource,
    ListSource,
    MicroBatches,
    SyntheticSource,
    batch_iterator,
    encode_chat,
    normalise_messages,
    read_jsonl,
    truncate,
)
from tasks.byte_tokenizer import build_byte_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_byte_tokenizer()


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_chat_labels_are_the_assistant_turns_only(tok):
    msgs = [{"role": "user", "content": "Q1?"}, {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2?"}, {"role": "assistant", "content": "A2"}]
    ex = encode_chat(msgs, tok)
    full = tok.apply_chat_template(msgs, tokenize=False)
    assert tok.decode(ex["input_ids"]) == full
    supervised = tok.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE])
    assert supervised == "A1<|im_end|>\nA2<|im_end|>\n"
    assert all(lab in (IGNORE, t) for t, lab in zip(ex["input_ids"], ex["labels"]))


def test_sharegpt_from_value_is_accepted():
    out = normalise_messages([{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}], "x")
    assert out == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]


def test_jsonl_missing_fields_name_file_line_and_fields(tmp_path, tok):
    p = _write(tmp_path / "d.jsonl", [{"text": "a" * 50}, {"prompt": "no", "answer": "fields"}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: missing the needed field 'messages' \(chat\) or 'text'.*"
                                        r"found fields \['answer', 'prompt'\]"):
        read_jsonl(p, tok, filter_len=0)
    p2 = _write(tmp_path / "c.jsonl", [{"messages": [{"role": "user"}]}])
    with pytest.raises(DataError, match=r"c\.jsonl:1: messages\[0\] lacks the needed fields 'role' and 'content'"):
        read_jsonl(p2, tok, filter_len=0)
    with pytest.raises(DataError, match="needed field 'messages'"):
        read_jsonl(p, tok, fmt="chat", filter_len=0)


def test_jsonl_filter_and_cutoff(tmp_path, tok):
    p = _write(tmp_path / "t.jsonl", [{"text": "x" * 10}, {"text": "y" * 100},
                                      {"messages": [{"role": "user", "content": "z" * 200},
                                                    {"role": "assistant", "content": "ok"}]}])
    src = read_jsonl(p, tok, filter_len=50, cutoff_len=64)
    assert src.size == 2  # the 10-byte text is filtered out (not longer than filter_len)
    assert [len(src.get(i)["input_ids"]) for i in range(2)] == [64, 64]
    chat = src.get(1)
    assert all(lab == IGNORE for lab in chat["labels"])  # right truncation cut the response away
    left = truncate({"input_ids": list(range(10)), "labels": list(range(10))}, 4, "left")
    assert left["input_ids"] == [6, 7, 8, 9]
    with pytest.raises(DataError, match="no example longer than filter_len=500"):
        read_jsonl(p, tok, filter_len=500)


def test_chatqa2_offline_fails_fast_with_a_clear_message(tok, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match=r"not in the local cache and the Hub is offline.*data\.path=DIR"):
        HubChatSource(tok, "Seerkfang/ChatQA2-Long-SFT-data-long_sft_train_filtered")


def test_hub_chat_source_from_a_local_dataset_folder(tmp_path, tok):
    datasets = pytest.importorskip("datasets")
    recs = [{"messages": [{"role": "user", "content": "doc " * 40 + str(i)}, {"role": "assistant", "content": "ans"}]}
            for i in range(5)] + [{"messages": [{"role": "user", "content": "short"},
                                                {"role": "assistant", "content": "a"}]}]
    datasets.Dataset.from_list(recs).save_to_disk(str(tmp_path / "ds"))
    src = HubChatSource(tok, str(tmp_path / "ds"), filter_len=100, cutoff_len=1000, max_samples=4)
    assert src.size == 4  # max_samples first, then the length filter
    ex = src.get(0)
    assert tok.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE]) == "ans<|im_end|>\n"


def test_synthetic_source_is_indexable_and_sized(tok):
    src = SyntheticSource(tok, 256, seed=0)
    a, b = src.get(3), SyntheticSource(tok, 256, seed=0).get(3)
    assert a == b and src.get(4) != a
    for i in range(6):
        ex = src.get(i)
        assert len(ex["input_ids"]) <= 256 and ex["input_ids"][-1] == tok.eos_token_id
        assert ex["labels"] == ex["input_ids"]
    with pytest.raises(DataError, match="unknown synthetic corpus task"):
        SyntheticSource(tok, 256, tasks=["passkey", "nope"])


def test_synthetic_answer_labels_cover_exactly_the_answer(tok):
    # the tiny world's distillation puts its loss on the answers, as SFT data puts it on the responses
    src = SyntheticSource(tok, 512, tasks=["passkey", "number_string"], labels="answer")
    full = SyntheticSource(tok, 512, tasks=["passkey", "number_string"])
    for i in range(6):
        ex, doc = src.get(i), src.document(i)
        assert ex["input_ids"] == full.get(i)["input_ids"]
        kept = tok.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE])
        assert kept == doc.text[doc.answer_start:] + "<|im_end|>"
        key = kept.replace("<|im_end|>", "").split()[-1]
        assert key.isdigit() and doc.text.count(key) >= 3  # the needle (twice) and the answer
    with pytest.raises(DataError, match="'all' or 'answer'"):
        SyntheticSource(tok, 256, labels="responses")


def test_micro_batches_pad_and_shuffle_deterministically():
    src = ListSource([{"input_ids": [i] * (i + 1), "labels": [i] * (i + 1)} for i in range(5)])
    mb = MicroBatches(src, 2, pad_id=99, seed=0)
    b = mb(0)
    assert b.input_ids.shape[0] == 2 and b.index == 0
    lens = [(row != 99).sum().item() for row in b.input_ids]
    assert b.n_tokens == sum(lens)
    assert ((b.labels == IGNORE) == (b.input_ids == 99)).all()
    # one epoch is a permutation; the next epoch another one; same seed, same order
    first = [mb.item_index(k) for k in range(5)]
    assert sorted(first) == list(range(5))
    assert [MicroBatches(src, 2, 99, seed=0).item_index(k) for k in range(10)] == [mb.item_index(k) for k in range(10)]
    assert [b.input_ids.tolist() for b in batch_iterator(mb, [0, 1, 2])] == [mb(g).input_ids.tolist() for g in range(3)]
