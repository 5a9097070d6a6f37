"""The training configuration: nested dataclasses, JSON files, `key=value` overrides, validation, a hash.

Why a hash: a resumed run must continue the *same* run. The hash covers every field that changes what is
trained (model, data, windows, loss, optimiser, schedule, precision); it leaves out fields that only say where
and how often to write or when to stop this invocation (`RUN_CONTROL_KEYS`), so `--max-steps 2` then a resume
to the end is the same run as one uninterrupted invocation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ahn.train.windows import PAPER_SINK_CANDIDATES, PAPER_WINDOW_CANDIDATES


class ConfigError(ValueError):
    """A configuration that cannot run: unknown key, wrong type, value out of range."""


@dataclass
class DataConfig:
    """Where training sequences come from.

    * ``chatqa2``: the paper's data, ``Seerkfang/ChatQA2-Long-SFT-data-long_sft_train_filtered`` from the HF Hub
      (``path`` may name another Hub dataset or a local dataset folder with the same ShareGPT ``messages``).
    * ``jsonl``: a local JSON-lines file of chats (``messages``) or plain text (``text``).
    * ``synthetic``: the tiny world's corpus (:mod:`tasks.synthetic.corpus`), generated on the fly, endless.
    * ``pysource``: the Python source installed on the machine (:mod:`ahn.train.pysource`), packed into rows of
      ``seq_len`` tokens; ``path`` names the roots (comma-separated, e.g. ``stdlib,site:torch``), ``max_samples``
      the number of rows, ``filter_len`` the shortest file in tokens.
    """

    source: str = "chatqa2"
    path: str | None = None  # Hub id / local folder (chatqa2) or a .jsonl file (jsonl)
    split: str = "train"
    format: str = "auto"  # jsonl: "auto" | "chat" | "text"
    filter_len: int = 288  # keep samples with more than this many tokens (paper)
    cutoff_len: int = 24576  # truncate samples to this many tokens (paper)
    truncation: str = "right"  # "right": keep the first cutoff_len tokens; "left": keep the last
    max_samples: int | None = 100000  # the first N records, before filtering (paper)
    num_proc: int | None = None  # tokenisation processes for the Hub dataset
    # synthetic corpus
    seq_len: int = 2048  # tokens per sequence (documents are padded to it)
    min_len: int | None = None  # shortest document drawn (default: 90% of seq_len)
    tasks: list[str] = field(default_factory=lambda: ["passkey", "number_string", "kv_retrieval", "prose"])
    task_weights: list[float] | None = None
    append_eos: bool = True  # end every synthetic document with the tokenizer's EOS
    labels: str = "all"  # synthetic: loss on "all" tokens, or only on each "answer" (like SFT response tokens)
    shuffle: bool = True  # finite sources: a seeded permutation per epoch
    num_workers: int = 0  # DataLoader workers (run control: does not change the batches)


@dataclass
class WindowConfig:
    """Sinks and window of the student, drawn per micro-batch (``random``) or fixed.

    Random (`docs/AHN.md` §8.4): ``W_tot = sinks + window`` uniform over ``window_candidates`` with
    ``min_fraction * L < W_tot < L``; ``sinks`` uniform over ``sink_candidates`` with ``sinks <= W_tot / 2``.
    """

    mode: str = "random"  # "random" | "fixed"
    window_candidates: list[int] = field(default_factory=lambda: list(PAPER_WINDOW_CANDIDATES))
    sink_candidates: list[int] = field(default_factory=lambda: list(PAPER_SINK_CANDIDATES))
    min_fraction: float = 0.125  # W_tot must exceed L * min_fraction (paper: L/8)
    sinks: int = 128  # fixed mode
    window: int = 896  # fixed mode, sinks not counted
    on_short: str = "error"  # a micro-batch too short for any window: "error" | "skip"


@dataclass
class OptimConfig:
    """AdamW and the schedule (HF Trainer defaults of the official script, `docs/AHN.md` §8.6)."""

    lr: float = 1e-4
    weight_decay: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 or less: no clipping
    warmup_ratio: float = 0.1
    schedule: str = "cosine"  # "cosine" | "linear" | "constant" (after warm-up)
    min_lr_ratio: float = 0.0
    # Names containing any of these get no weight decay. HF Trainer exempts "bias" names (and LayerNorm
    # modules, which AHN has none of), so decay also hits A_log, D and the norm weights: replicated (docs/AHN.md §8.6).
    no_decay: list[str] = field(default_factory=lambda: ["bias"])


@dataclass
class TrainConfig:
    """One AHN self-distillation run."""

    base: str = ""  # HF folder or Hub id of the frozen base model
    cell: str = "gdn"  # "gdn" | "dn" | "mamba2"
    backend: str = "auto"  # AHN kernels: "auto" (fla on CUDA) | "reference" | "fla"
    output_dir: str = "runs/ahn-train"
    checkpoint_dir: str | None = None  # resumable checkpoints (default: <output_dir>/checkpoints)
    data: DataConfig = field(default_factory=DataConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: str = "kl"  # "kl" (forward KL teacher || student) | "ce" (student cross-entropy)
    kl_positions: str = "official"  # "official": labels[t] != -100 (unshifted) | "shifted": labels[t+1]
    loss_chunk: int = 1024  # positions per chunk of the checkpointed LM-head + loss
    # How the KL is computed (the same loss either way, so not in the config hash): "checkpoint" recomputes the
    # LM head of both models in backward; "fused" computes each chunk's logits once and its gradient right away
    # (ahn.train.loss.fused_kl). Only the KL loss has the fused form.
    kl_impl: str = "checkpoint"
    steps: int = 740  # optimiser updates in the whole run (the schedule's length)
    micro_batch_size: int = 1
    grad_accum: int = 4
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 on CPU) | "bf16" | "fp32"
    gradient_checkpointing: bool = True
    seed: int = 0
    # Per cell kind, arguments of the cell's reset_parameters (ahn.cells.init_options), e.g.
    # {"gdn": {"A_max": 1.0}}: the paper's init unless set. Only the trained cell's entry is used.
    cell_init: dict[str, dict[str, float]] = field(default_factory=dict)
    # A warm start: the cells begin from this released-format AHN folder (of the same cell and base), with a fresh
    # optimiser and schedule, e.g. a second schedule after a first one ended unsettled. A resumed checkpoint wins.
    init_ahn: str | None = None
    device: str = "auto"
    save_dtype: str = "bfloat16"  # dtype of the released-format AHN weights ("bfloat16" | "float32")
    save_every: int = 100  # resumable checkpoint every N steps (0: only at the end)
    keep_checkpoints: int = 2
    log_every: int = 1
    wandb: str | None = None  # W&B project name (optional; never required)
    resume: str = "auto"  # "auto" (latest checkpoint if any) | "never" | a checkpoint folder
    max_steps: int | None = None  # stop this invocation at this global step (resume later)
    time_budget_s: float | None = None  # stop this invocation after this much training time (resume later)
    dry_run: bool = False  # one micro-batch forward/backward, no update, nothing saved


# Fields that do not change what is trained; left out of the config hash (see module docstring).
RUN_CONTROL_KEYS: frozenset[str] = frozenset({
    "output_dir", "checkpoint_dir", "save_every", "keep_checkpoints", "log_every", "wandb", "resume",
    "max_steps", "time_budget_s", "dry_run", "device", "data.num_workers", "data.num_proc", "kl_impl",
})

CHOICES: dict[str, tuple[str, ...]] = {
    "cell": ("gdn", "dn", "mamba2"),
    "backend": ("auto", "reference", "recurrent", "chunked", "fla"),
    "loss": ("kl", "ce"),
    "kl_impl": ("checkpoint", "fused"),
    "kl_positions": ("official", "shifted"),
    "precision": ("auto", "bf16", "fp32"),
    "save_dtype": ("bfloat16", "float32"),
    "data.source": ("chatqa2", "jsonl", "synthetic", "pysource"),
    "data.format": ("auto", "chat", "text"),
    "data.truncation": ("right", "left"),
    "window.mode": ("random", "fixed"),
    "window.on_short": ("error", "skip"),
    "optim.schedule": ("cosine", "linear", "constant"),
}


# ------------------------------------------------------------------------------------------------------
# dict <-> dataclass


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check (and gently convert: int -> float, str -> number from overrides) a value against a type hint."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build a (nested) config dataclass; unknown keys raise a ConfigError naming them and the valid ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected an object, got {data!r}")
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        where = prefix.rstrip(".") or "config"
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(prefix + k for k in unknown)}; "
                          f"valid keys: {', '.join(sorted(types_))}")
    kwargs = {}
    for name, tp in types_.items():
        if name not in data:
            continue
        value = data[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=VALUE``: VALUE is parsed as JSON when it is valid JSON, else taken as a string."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. optim.lr=3e-4, data.seq_len=1024)")
    key, raw = text.split("=", 1)
    key = key.strip().lstrip("-").replace("-", "_")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def apply_overrides(data: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a missing intermediate object is created; validation comes later)."""
    out = json.loads(json.dumps(data))
    for key, value in overrides:
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {p!r} is not an object")
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A validated TrainConfig from a JSON file (optional) plus ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {str(p)!r} is not valid JSON: {e}") from e
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {str(p)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from e
        except RecursionError as e:
            raise ConfigError(f"config file {str(p)!r} nests too deeply to be a config") from e
        except OSError as e:
            raise ConfigError(f"config file {str(p)!r} cannot be read ({e.strerror or e})") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a JSON object, got a {type(data).__name__}")
        data.pop("//", None)  # a comment key is allowed at the top level
    data = apply_overrides(data, [parse_override(o) for o in overrides or []])
    cfg = from_dict(TrainConfig, data)
    validate(cfg)
    return cfg


# ------------------------------------------------------------------------------------------------------
# validation, hash, diff


def _validate_cell_init(cell_init: Any) -> None:
    from ahn.cells import init_options, make_cell

    if not isinstance(cell_init, dict):
        raise ConfigError(f"cell_init must be an object keyed by cell kind, got {cell_init!r}")
    for kind, opts in cell_init.items():
        if kind not in CHOICES["cell"]:
            raise ConfigError(f"cell_init: unknown cell {kind!r}; valid cells: {', '.join(CHOICES['cell'])}")
        valid = init_options(kind)
        if not isinstance(opts, dict):
            raise ConfigError(f"cell_init.{kind} must be an object of numbers, got {opts!r}")
        for name, value in opts.items():
            if name not in valid:
                raise ConfigError(f"cell_init.{kind}: unknown option {name!r}; valid options: "
                                  f"{', '.join(valid) or '(none)'}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"cell_init.{kind}.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"cell_init.{kind}.{name} must be a finite number, got {value!r}")
        try:  # the cell's own range checks, on a shapeless cell: nothing is allocated
            make_cell(kind, hidden_size=8, num_heads=2, head_dim=4, device="meta").reset_parameters(**opts)
        except ValueError as e:
            raise ConfigError(f"cell_init.{kind}: {e}") from e


def validate(cfg: TrainConfig) -> TrainConfig:
    """Raise a ConfigError for anything that would fail later (or silently train the wrong thing)."""
    flat = flatten(to_dict(cfg))
    for key, value in flat.items():  # a config built in code skips _coerce: NaN or inf would train silently
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{key} must be a finite number, got {value!r}")
    for key, valid in CHOICES.items():
        if flat[key] not in valid:
            raise ConfigError(f"{key}={flat[key]!r} is not valid; choose one of: {', '.join(valid)}")
    if not cfg.base:
        raise ConfigError("base is empty: name the frozen base model (a HF folder or Hub id)")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", cfg.device):
        raise ConfigError(f"device={cfg.device!r} is not valid; choose auto, cpu, cuda, cuda:N or mps")
    positive = ["steps", "micro_batch_size", "grad_accum", "loss_chunk", "log_every", "keep_checkpoints",
                "data.seq_len", "data.cutoff_len"]
    for key in positive:
        if flat[key] < 1:
            raise ConfigError(f"{key} must be >= 1, got {flat[key]}")
    for key in ("save_every", "data.filter_len"):
        if flat[key] < 0:
            raise ConfigError(f"{key} must be >= 0, got {flat[key]}")
    if cfg.max_steps is not None and cfg.max_steps < 0:
        raise ConfigError(f"max_steps must be >= 0, got {cfg.max_steps}")
    if cfg.data.max_samples is not None and cfg.data.max_samples < 1:
        raise ConfigError(f"data.max_samples must be >= 1 or null, got {cfg.data.max_samples}")
    if cfg.data.source == "jsonl" and not cfg.data.path:
        raise ConfigError("data.source='jsonl' needs data.path (a .jsonl file)")
    if cfg.data.source == "pysource" and cfg.data.max_samples is None:
        raise ConfigError("data.source='pysource' needs data.max_samples (the number of rows of data.seq_len tokens)")
    if cfg.data.source == "synthetic":
        if cfg.data.min_len is not None and not 1 <= cfg.data.min_len <= cfg.data.seq_len:
            raise ConfigError(f"data.min_len must lie in [1, data.seq_len={cfg.data.seq_len}], got {cfg.data.min_len}")
        if cfg.data.task_weights is not None and len(cfg.data.task_weights) != len(cfg.data.tasks):
            raise ConfigError(f"data.task_weights has {len(cfg.data.task_weights)} entries for "
                              f"{len(cfg.data.tasks)} data.tasks")
    w = cfg.window
    if w.mode == "random":
        if not w.window_candidates or any(c < 1 for c in w.window_candidates):
            raise ConfigError(f"window.window_candidates must be positive integers, got {w.window_candidates}")
        if not w.sink_candidates or any(c < 0 for c in w.sink_candidates):
            raise ConfigError(f"window.sink_candidates must be integers >= 0, got {w.sink_candidates}")
        if not 0 <= w.min_fraction < 1:
            raise ConfigError(f"window.min_fraction must lie in [0, 1), got {w.min_fraction}")
    else:
        if w.sinks < 0 or w.window < 1:
            raise ConfigError(f"fixed window needs sinks >= 0 and window >= 1, got sinks={w.sinks}, window={w.window}")
        if cfg.data.source == "synthetic" and w.sinks + w.window >= cfg.data.seq_len:
            raise ConfigError(
                f"fixed window sinks+window = {w.sinks}+{w.window} = {w.sinks + w.window} is not smaller than the "
                f"sequence length data.seq_len={cfg.data.seq_len}: no token would ever leave the window, so the AHN "
                f"could not learn; use a smaller window or longer sequences")
    _validate_cell_init(cfg.cell_init)
    o = cfg.optim
    if o.lr <= 0 or o.eps <= 0 or o.weight_decay < 0:
        raise ConfigError(f"optim needs lr > 0, eps > 0, weight_decay >= 0 (got {o.lr}, {o.eps}, {o.weight_decay})")
    if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {o.betas}")
    if not 0 <= o.warmup_ratio <= 1 or not 0 <= o.min_lr_ratio <= 1:
        raise ConfigError("optim.warmup_ratio and optim.min_lr_ratio must lie in [0, 1]")
    return cfg


def config_hash(cfg: TrainConfig) -> str:
    """sha256 (16 hex) of the fields that define the run (RUN_CONTROL_KEYS excluded)."""
    return hash_of(hashed_items(cfg))


def hashed_items(cfg: TrainConfig | dict) -> dict[str, Any]:
    d = cfg if isinstance(cfg, dict) else to_dict(cfg)
    return {k: v for k, v in flatten(d).items() if k not in RUN_CONTROL_KEYS}


def hash_of(items: dict[str, Any]) -> str:
    blob = json.dumps(items, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def diff_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ (or exist on one side only), with both values, sorted."""
    keys = sorted(set(a) | set(b))
    missing = object()
    out = []
    for k in keys:
        va, vb = a.get(k, missing), b.get(k, missing)
        if va != vb:
            sa = "<absent>" if va is missing else json.dumps(va)
            sb = "<absent>" if vb is missing else json.dumps(vb)
            out.append(f"{k}: {sa} -> {sb}")
    return out
