"""An offline byte-level tokenizer: one token per UTF-8 byte, plus three Qwen-style special tokens.

Why: tests and the project's tiny models need a real HF tokenizer (``encode``/``decode``/
``apply_chat_template``/``save_pretrained``) that needs no download, round-trips every string exactly and
makes token counts predictable (tokens = bytes), so truncation lengths can be checked to the token.

Ids: bytes ``0..255`` are ids ``0..255``; ``<|endoftext|>`` = 256, ``<|im_start|>`` = 257, ``<|im_end|>`` = 258.
The chat template is Qwen's shape without a default system prompt.

Wrapping it as a ``transformers.PreTrainedTokenizerFast`` does not import torch (checked by a test); the
transformers import is still done lazily inside :func:`build_byte_tokenizer` so that merely importing
``tasks`` stays light.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    """The printable-character alias of every byte used by byte-level BPE (GPT-2 convention).

    Printable Latin-1 bytes stand for themselves; the others are shifted to code points from 256 up, in
    byte order. The ``tokenizers`` ByteLevel pre-tokenizer and decoder use the same table.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table: dict[int, str] = {}
    shift = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shift)
            shift += 1
    return table


def build_raw_tokenizer() -> Any:
    """The bare ``tokenizers.Tokenizer`` (no transformers): byte-level BPE with no merges."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {ch: b for b, ch in byte_to_char().items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tok


def build_byte_tokenizer() -> Any:
    """The byte tokenizer as a ``transformers.PreTrainedTokenizerFast`` with a chat template.

    eos = ``<|im_end|>`` (the end of an assistant turn), pad = ``<|endoftext|>``, no BOS, nothing added by
    ``encode`` (like Qwen).
    """
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=build_raw_tokenizer(),
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        model_max_length=1 << 30,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


# The class name written into tokenizer_config.json: transformers 5 writes "TokenizersBackend", which
# transformers 4.x does not know; "PreTrainedTokenizerFast" loads the same tokenizer.json on both.
PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def save_byte_tokenizer(path: str | Path) -> Path:
    """Write the tokenizer to ``path`` so that ``AutoTokenizer.from_pretrained(path)`` loads it offline, with
    transformers 4.57 as with 5.x (same ids, special tokens and chat template)."""
    import json

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    build_byte_tokenizer().save_pretrained(str(out))
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
