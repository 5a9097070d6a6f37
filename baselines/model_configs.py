"""Shapes of the base models, kept apart from torch so cost estimates are instant.

`ModelDims` holds only what the cost model needs; the full Hugging Face `config.json` dicts of the three
Qwen2.5-Instruct bases (and of the small real base, Qwen2.5-Coder-0.5B-Instruct) are embedded too, because the harness builds meta-device models from them without
touching the Hub. The dicts are written from the published model cards as best known: the fields the
architecture depends on (sizes, heads, vocabulary, rope_theta, eps, tying) are certain; bookkeeping fields
(`max_window_layers`, `sliding_window`, `transformers_version`) are inert because `use_sliding_window` is false.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "BASE_ALIASES",
    "BASES",
    "ModelDims",
    "QWEN25_HF_CONFIGS",
    "get_dims",
    "hf_config",
    "resolve_base",
]


@dataclass(frozen=True)
class ModelDims:
    """The sizes a cost formula needs; frozen so a preset can never be changed behind a report's back."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    name: str = "custom"
    tie_word_embeddings: bool = False
    qkv_bias: bool = False

    def __post_init__(self) -> None:
        for field in ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                      "head_dim", "vocab_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelDims.{field} must be a positive int, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})"
            )

    @classmethod
    def from_hf_config(cls, config: Any, name: str | None = None) -> ModelDims:
        """Read a HF config (a dict or a `PretrainedConfig`); head_dim defaults to hidden / heads, as in HF."""
        if isinstance(config, Mapping):
            cfg: dict[str, Any] = dict(config)
        elif hasattr(config, "to_dict"):
            cfg = dict(config.to_dict())
            # PretrainedConfig.to_dict() drops attributes equal to None; head_dim may live only as an attribute.
            if getattr(config, "head_dim", None) is not None:
                cfg["head_dim"] = config.head_dim
        else:
            cfg = dict(vars(config))
        if "text_config" in cfg and "hidden_size" not in cfg:  # multimodal wrappers nest the LM config
            inner = cfg["text_config"]
            return cls.from_hf_config(inner if isinstance(inner, Mapping) else inner, name=name)
        try:
            hidden = int(cfg["hidden_size"])
            heads = int(cfg["num_attention_heads"])
            layers = int(cfg["num_hidden_layers"])
            inter = int(cfg["intermediate_size"])
            vocab = int(cfg["vocab_size"])
        except KeyError as exc:
            raise ValueError(f"HF config lacks {exc.args[0]!r}; cannot build ModelDims") from None
        kv_heads = cfg.get("num_key_value_heads")
        head_dim = cfg.get("head_dim")
        if head_dim is None:
            if hidden % heads:
                raise ValueError(f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
            head_dim = hidden // heads
        model_type = str(cfg.get("model_type", ""))
        # Qwen2 hard-codes bias on q/k/v and has no `attention_bias` key; Llama-style configs carry the key.
        qkv_bias = bool(cfg.get("attention_bias", model_type == "qwen2"))
        return cls(
            hidden_size=hidden,
            intermediate_size=inter,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=int(kv_heads) if kv_heads is not None else heads,
            head_dim=int(head_dim),
            vocab_size=vocab,
            name=name or str(cfg.get("_name_or_path") or model_type or "custom"),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=qkv_bias,
        )

    @property
    def kv_groups(self) -> int:
        """Query heads per KV head (GQA group size)."""
        return self.num_heads // self.num_kv_heads

    def num_parameters(self) -> int:
        """Parameter count of the base decoder (embeddings, attention, MLP, norms, LM head unless tied)."""
        d, dh, hq, hkv = self.hidden_size, self.head_dim, self.num_heads, self.num_kv_heads
        attn = d * hq * dh + 2 * d * hkv * dh + hq * dh * d
        if self.qkv_bias:
            attn += hq * dh + 2 * hkv * dh
        mlp = 3 * d * self.intermediate_size
        per_layer = attn + mlp + 2 * d  # two RMSNorm weights
        embed = self.vocab_size * d
        head = 0 if self.tie_word_embeddings else self.vocab_size * d
        return self.num_layers * per_layer + embed + head + d  # + final norm

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, for manifests."""
        return asdict(self)


def _qwen25(hidden: int, inter: int, layers: int, heads: int, kv: int, vocab: int, tie: bool,
            max_window_layers: int, sliding_window: int) -> dict[str, Any]:
    """One Qwen2.5-Instruct `config.json`; the fields shared by the family are written once here."""
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 32768,
        "max_window_layers": max_window_layers,
        "model_type": "qwen2",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": sliding_window,
        "tie_word_embeddings": tie,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.43.1",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab,
    }


#: The full HF `config.json` of each base, keyed by the Hub repository id.
QWEN25_HF_CONFIGS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen2.5-3B-Instruct": _qwen25(2048, 11008, 36, 16, 2, 151936, True, 70, 32768),
    "Qwen/Qwen2.5-7B-Instruct": _qwen25(3584, 18944, 28, 28, 4, 152064, False, 28, 131072),
    "Qwen/Qwen2.5-14B-Instruct": _qwen25(5120, 13824, 48, 40, 8, 152064, False, 70, 131072),
    # The small real base of the offline world. The release ties its LM head to the embeddings, as Qwen2.5's
    # 0.5B-3B models do; the local quantized copy (`python -m harness fetch-model qwen2.5-coder-0.5b`) stores
    # a separate one (its GGUF holds `output.weight`), which changes the parameter count, not the FLOPs per token.
    "Qwen/Qwen2.5-Coder-0.5B-Instruct": _qwen25(896, 4864, 24, 14, 2, 151936, True, 24, 32768),
}

#: Short names the paper uses ("3B") to Hub ids.
BASE_ALIASES: dict[str, str] = {
    "3B": "Qwen/Qwen2.5-3B-Instruct",
    "7B": "Qwen/Qwen2.5-7B-Instruct",
    "14B": "Qwen/Qwen2.5-14B-Instruct",
    "Coder-0.5B": "Qwen/Qwen2.5-Coder-0.5B-Instruct",
}

#: ModelDims of the embedded bases, keyed by the short name.
BASES: dict[str, ModelDims] = {
    short: ModelDims.from_hf_config(QWEN25_HF_CONFIGS[repo], name=repo.split("/")[-1])
    for short, repo in BASE_ALIASES.items()
}


def resolve_base(name: str) -> str:
    """Short name ("3B") for any spelling: "3b", "qwen2.5-3b", "Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-3B-Instruct"
    (and "coder-0.5b", "qwen2.5-coder-0.5b", … for "Coder-0.5B")."""
    key = name.strip()
    for short in BASE_ALIASES:
        if key.upper() == short.upper():
            return short
    low = key.lower().split("/")[-1].removesuffix("-instruct")
    for short in BASE_ALIASES:
        if low in (f"qwen2.5-{short.lower()}", f"qwen2.5_{short.lower()}"):
            return short
    raise ValueError(
        f"unknown base model {name!r}; known: {', '.join(BASE_ALIASES)} "
        f"(or {', '.join(BASE_ALIASES.values())})"
    )


def get_dims(name: str) -> ModelDims:
    """ModelDims of an embedded base, by any accepted spelling."""
    return BASES[resolve_base(name)]


def hf_config(name: str) -> dict[str, Any]:
    """A fresh copy of an embedded base's `config.json` (callers may mutate it)."""
    return copy.deepcopy(QWEN25_HF_CONFIGS[BASE_ALIASES[resolve_base(name)]])
