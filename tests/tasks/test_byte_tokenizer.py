"""The offline byte tokenizer: exact round trips, one token per byte, Qwen-style chat, saved and reloaded."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.byte_tokenizer import (
    CHAT_TEMPLATE,
    ENDOFTEXT,
    IM_END,
    IM_START,
    VOCAB_SIZE,
    build_byte_tokenizer,
    save_byte_tokenizer,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tok():
    return build_byte_tokenizer()


def _random_text(rng: random.Random, n: int) -> str:
    pools = [
        "abc xyz  \n\t",
        "éàüß€",
        "中文汉字测试。",
        "🙂🚀",
        "".join(chr(c) for c in range(0, 32)),
        "{}[]\"'\\",
    ]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(n))


def test_round_trip_and_one_token_per_byte(tok) -> None:
    rng = random.Random(0)
    for _ in range(50):
        text = _random_text(rng, rng.randint(0, 200))
        ids = tok.encode(text)
        assert ids == list(text.encode("utf-8"))
        assert tok.decode(ids) == text


def test_special_tokens(tok) -> None:
    assert tok.convert_tokens_to_ids([ENDOFTEXT, IM_START, IM_END]) == [256, 257, 258]
    assert len(tok) == VOCAB_SIZE == 259
    assert tok.eos_token == IM_END and tok.pad_token == ENDOFTEXT
    assert tok.bos_token is None
    ids = tok.encode(f"a{IM_END}b")
    assert ids == [97, 258, 98]
    assert tok.decode(ids, skip_special_tokens=True) == "ab"
    assert tok.encode("") == []  # nothing added (no BOS), like Qwen


def test_chat_template(tok) -> None:
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.chat_template == CHAT_TEMPLATE


def test_save_and_autotokenizer_offline(tmp_path: Path, tok) -> None:
    from transformers import AutoTokenizer

    path = save_byte_tokenizer(tmp_path / "byte")
    loaded = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    text = "héllo 世界\n"
    assert loaded.encode(text) == tok.encode(text)
    assert loaded.eos_token == IM_END and loaded.pad_token == ENDOFTEXT
    assert loaded.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
    ) == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"


def test_tasks_never_import_torch() -> None:
    code = (
        "import sys\n"
        "import tasks, tasks.sample, tasks.prompts, tasks.prompting, tasks.hub, tasks.lveval\n"
        "import tasks.infinitebench, tasks.longbench, tasks.ahn_paper, tasks.registry, tasks.byte_tokenizer\n"
        "from tasks.byte_tokenizer import build_byte_tokenizer\n"
        "from tasks.prompting import prepare, Truncation\n"
        "t = build_byte_tokenizer()\n"
        "prepare('x' * 100, t, Truncation('middle', 10), True)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout
