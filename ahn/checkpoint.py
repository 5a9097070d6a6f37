"""Checkpoint I/O in the released AHN format (`docs/AHN.md` §5), with strict loading.

A checkpoint is a folder with one ``model.safetensors`` holding only the AHN tensors, keyed
``model.layers.{i}.ahn.fn.<param>``, and the base model's full ``config.json`` carrying the AHN keys
(``_layer_implementation``, ``_ahn_implementation``, ``fa_layer_ids``, ...). ``_layer_implementation`` names
the base family: ``"Qwen2MemDecoderLayer"`` (the releases, Qwen2.5 bases) or ``"Qwen3MemDecoderLayer"`` (what
the official code writes for a Qwen3 base); a checkpoint only loads onto a base of its family.

Why strict: the official merge script loads non-strictly and never reports missing keys, so a name
mismatch silently leaves random AHN weights (`docs/DEFECTS.md` D3). Here every AHN key must be consumed, every AHN
parameter present and every shape equal, and an error names the offending keys. A transposed
``o_proj`` cannot be detected (square per-head blocks); the layout is documented in
:class:`ahn.cells.GroupLinear`.

Why the window is never read from the config: ``sliding_window`` and ``num_attn_sinks`` in the released
configs are training leftovers (the last random draw); sinks and window are set explicitly by the
method. :meth:`AHNCheckpointConfig.base_config_dict` also disables HF's own sliding window.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ahn.cells import AHN_IMPLEMENTATIONS, AHNCell, kind_from_name

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
# ``_layer_implementation`` per base family (HF ``model_type``). The Qwen2 and Qwen3 names are the official
# code's (its Qwen2 and Qwen3 AHN decoder layers); it has no Llama or Mistral AHN, so those two names are this
# project's, in the same pattern, for checkpoints it trains on such bases.
LAYER_IMPLEMENTATIONS: dict[str, str] = {
    "qwen2": "Qwen2MemDecoderLayer",
    "qwen3": "Qwen3MemDecoderLayer",
    "llama": "LlamaMemDecoderLayer",
    "mistral": "MistralMemDecoderLayer",
}
_FAMILY_OF_LAYER = {impl: family for family, impl in LAYER_IMPLEMENTATIONS.items()}

# The nine released checkpoints, keyed (cell kind, base size), and their base models.
RELEASED_CHECKPOINTS: dict[tuple[str, str], str] = {
    (kind, size): f"ByteDance-Seed/AHN-{name}-for-Qwen-2.5-Instruct-{size.upper()}"
    for kind, name in (("mamba2", "Mamba2"), ("dn", "DN"), ("gdn", "GDN"))
    for size in ("3b", "7b", "14b")
}
RELEASED_REPO_IDS: tuple[str, ...] = tuple(RELEASED_CHECKPOINTS.values())
BASE_MODELS: dict[str, str] = {size: f"Qwen/Qwen2.5-{size.upper()}-Instruct" for size in ("3b", "7b", "14b")}

# AHN keys written next to the base config (the released values; docs/AHN.md §5.1).
AHN_CONFIG_KEYS: tuple[str, ...] = ("_layer_implementation", "_ahn_implementation", "fa_layer_ids",
                                    "use_ahn_router", "use_q_proj", "save_ahn_only")
# Keys that must never drive the harness: training leftovers, stock SWA switches (docs/AHN.md §5.1).
UNTRUSTED_CONFIG_KEYS: tuple[str, ...] = (
    "sliding_window", "num_attn_sinks", "dy_sliding_window", "dy_num_attn_sinks", "use_sliding_window",
    "max_window_layers", "sliding_window_type", "ahn_position", "loss_type", "use_normalized_l2",
    "use_layerwise_decay", "save_ahn_only",
)

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*")
_MAX_LISTED = 20


class AHNCheckpointError(ValueError):
    """A checkpoint that cannot be trusted: wrong format, missing/unexpected/mis-shaped keys, unreachable."""


@dataclass(frozen=True)
class AHNCheckpointConfig:
    """What the harness takes from a checkpoint's config.json. Deliberately has no window or sinks."""

    cell_kind: str
    ahn_implementation: str
    model_type: str  # the base family the checkpoint was made for ("qwen2", "qwen3", ...)
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    fa_layer_ids: tuple[int, ...] = ()
    use_ahn_router: bool = False
    use_q_proj: bool = False
    ignored: Mapping[str, Any] = field(default_factory=dict)  # untrusted keys found, for provenance only
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def layer_implementation(self) -> str:
        return LAYER_IMPLEMENTATIONS[self.model_type]

    def base_config_dict(self) -> dict[str, Any]:
        """The config as a plain base config: AHN and training keys dropped, HF's own SWA switched off."""
        cfg = {k: v for k, v in self.raw.items() if k not in AHN_CONFIG_KEYS and k not in UNTRUSTED_CONFIG_KEYS}
        cfg.pop("layer_types", None)
        cfg.update(use_sliding_window=False, sliding_window=None)
        return cfg


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_ahn_state_dict` did."""

    source: Path
    loaded: tuple[str, ...]
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    config: AHNCheckpointConfig | None = None


# --------------------------------------------------------------------------------------------------
# keys


def canonical_key(key: str) -> str:
    """``model.layers.{i}.ahn...`` whether the state dict came from a CausalLM or its inner base model."""
    if key.startswith("layers."):
        return "model." + key
    return key


def _is_ahn_key(key: str) -> bool:
    return ".ahn." in f".{key}"


def ahn_state_dict(model: nn.Module, *, keep_vars: bool = False) -> dict[str, torch.Tensor]:
    """The model's AHN tensors under their released (canonical) names."""
    return {canonical_key(k): v for k, v in model.state_dict(keep_vars=keep_vars).items() if _is_ahn_key(k)}


def _cells(model: nn.Module) -> list[AHNCell]:
    return [m for m in model.modules() if isinstance(m, AHNCell)]


def _layer_ids(keys) -> set[int]:
    ids = set()
    for k in keys:
        m = re.search(r"(?:^|\.)layers\.(\d+)\.ahn\.", k)
        if m:
            ids.add(int(m.group(1)))
    return ids


def _listed(keys, limit: int = _MAX_LISTED) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


# --------------------------------------------------------------------------------------------------
# base family


def layer_implementation_for(model_type: str | None) -> str:
    """The ``_layer_implementation`` of an AHN checkpoint for a base of this family (HF ``model_type``)."""
    impl = LAYER_IMPLEMENTATIONS.get(str(model_type))
    if impl is None:
        raise AHNCheckpointError(f"no AHN layer implementation for a base of model_type={model_type!r}; "
                                 f"valid model types: {', '.join(LAYER_IMPLEMENTATIONS)}")
    return impl


def check_base_family(config: AHNCheckpointConfig, model: nn.Module, source: str = "the checkpoint") -> None:
    """Refuse a checkpoint made for another base family, naming both (its layer implementation and the model's)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type == config.model_type:
        return
    expects = LAYER_IMPLEMENTATIONS.get(str(model_type))
    takes = f"which takes _layer_implementation={expects!r}" if expects else \
        f"which has no AHN layer implementation (valid model types: {', '.join(LAYER_IMPLEMENTATIONS)})"
    raise AHNCheckpointError(
        f"{source} has _layer_implementation={config.layer_implementation!r} (a {config.model_type} base) but the "
        f"model is a {model_type} base ({type(model).__name__}, model_type={model_type!r}), {takes}; load it "
        f"onto the base it was trained for")


# --------------------------------------------------------------------------------------------------
# save


def save_ahn_checkpoint(model: nn.Module, path: str | os.PathLike, cell_kind: str, base_config: Mapping[str, Any] | Any,
                        *, dtype: torch.dtype | None = torch.bfloat16) -> Path:
    """Write the released format: ``model.safetensors`` (AHN tensors only) + ``config.json``.

    ``base_config`` is the base model's config (a dict or a transformers config). ``dtype=None`` keeps
    each tensor's dtype; the default bf16 matches the releases (`docs/AHN.md` §10.1).
    """
    from safetensors.torch import save_file

    kind = kind_from_name(cell_kind)
    tensors = ahn_state_dict(model)
    if not tensors:
        raise AHNCheckpointError("the model has no AHN tensors (no state-dict key contains '.ahn.'); attach AHN first")
    kinds = {c.kind for c in _cells(model)}
    if kinds and kinds != {kind}:
        raise AHNCheckpointError(f"cell_kind={cell_kind!r} but the model's AHN cells are {sorted(kinds)}")
    cfg = dict(base_config.to_dict() if hasattr(base_config, "to_dict") else base_config)
    model_type = cfg.get("model_type") or getattr(getattr(model, "config", None), "model_type", None)
    own_type = getattr(getattr(model, "config", None), "model_type", None)
    if own_type is not None and own_type != model_type:
        raise AHNCheckpointError(f"base_config has model_type={model_type!r} but the model is {own_type!r}")
    layer_implementation = layer_implementation_for(model_type)
    n_layers = cfg.get("num_hidden_layers")
    if n_layers is not None and _layer_ids(tensors) != set(range(n_layers)):
        raise AHNCheckpointError(f"AHN tensors cover layers {sorted(_layer_ids(tensors))} but the config has "
                                 f"num_hidden_layers={n_layers} (every layer must have an AHN: fa_layer_ids='')")
    cfg.update(model_type=model_type, _layer_implementation=layer_implementation,
               _ahn_implementation=AHN_IMPLEMENTATIONS[kind], fa_layer_ids="", use_ahn_router=False, use_q_proj=False,
               save_ahn_only=True)

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    payload = {k: (v.detach().to(dtype) if dtype is not None else v.detach()).to("cpu").contiguous().clone()
               for k, v in sorted(tensors.items())}
    save_file(payload, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    (out / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=True, default=str) + "\n")
    return out


# --------------------------------------------------------------------------------------------------
# resolve + read


def _offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or env in {"1", "ON", "YES", "TRUE"}


def resolve_checkpoint(path_or_repo: str | os.PathLike, *, revision: str | None = None) -> Path:
    """A local folder for a checkpoint: the folder itself, a file's folder, or a Hub snapshot.

    Offline (``HF_HUB_OFFLINE=1``) and not cached ⇒ an immediate error naming the repo and how to pass a
    local folder instead; no network retries.
    """
    p = Path(path_or_repo).expanduser()
    if p.is_dir():
        return p
    if p.is_file():
        return p.parent
    repo = str(path_or_repo)
    if not _REPO_ID.fullmatch(repo):
        raise AHNCheckpointError(f"{repo!r} is neither an existing local folder nor a Hub repo id ('owner/name')")
    from huggingface_hub import snapshot_download

    patterns = [WEIGHTS_NAME, CONFIG_NAME]
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=patterns, local_files_only=True))
    except Exception:  # not cached: fall through to the network (or fail at once when offline)
        pass
    hint = (f"Download it on a connected machine (`hf download {repo} --local-dir DIR`) and pass "
            f"the local folder DIR instead of the repo id.")
    if _offline():
        raise AHNCheckpointError(f"{repo!r} is not a local folder, so it was taken as a Hugging Face Hub repo id, "
                                 f"but it is not in the local cache and the Hub is offline (HF_HUB_OFFLINE=1). {hint}")
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=patterns))
    except Exception as e:
        raise AHNCheckpointError(f"could not fetch AHN checkpoint {repo!r} from the Hugging Face Hub "
                                 f"({type(e).__name__}: {e}). {hint}") from e


def parse_ahn_config(cfg: Mapping[str, Any]) -> AHNCheckpointConfig:
    """Validate and digest a checkpoint config dict (see :func:`read_ahn_config`)."""
    impl = cfg.get("_layer_implementation")
    family = _FAMILY_OF_LAYER.get(impl) if isinstance(impl, str) else None
    if family is None:
        raise AHNCheckpointError(f"not an AHN checkpoint config: _layer_implementation={impl!r}, expected one of "
                                 f"{', '.join(repr(v) for v in LAYER_IMPLEMENTATIONS.values())}")
    model_type = cfg.get("model_type", family)
    if model_type != family:
        raise AHNCheckpointError(f"inconsistent AHN checkpoint config: _layer_implementation={impl!r} is a {family} "
                                 f"layer but model_type={model_type!r}")
    ahn_impl = cfg.get("_ahn_implementation")
    try:
        kind = kind_from_name(str(ahn_impl))
    except ValueError as e:
        raise AHNCheckpointError(f"config _ahn_implementation={ahn_impl!r}: {e}") from e
    for opt in ("use_ahn_router", "use_q_proj"):
        if cfg.get(opt, False):
            raise AHNCheckpointError(f"config has {opt}=true: this optional module is not released and not "
                                     f"supported by this harness")
    fa = str(cfg.get("fa_layer_ids", "") or "").strip()
    fa_ids = tuple(int(x) for x in fa.split(",") if x.strip())
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    ignored = {k: cfg[k] for k in UNTRUSTED_CONFIG_KEYS if k in cfg}  # said once, by load_ahn_state_dict
    return AHNCheckpointConfig(
        cell_kind=kind,
        ahn_implementation=AHN_IMPLEMENTATIONS[kind],
        model_type=family,
        num_layers=int(cfg["num_hidden_layers"]),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or hidden // heads),
        fa_layer_ids=fa_ids,
        use_ahn_router=False,
        use_q_proj=False,
        ignored=ignored,
        raw=dict(cfg),
    )


def read_ahn_config(path_or_repo: str | os.PathLike, *, revision: str | None = None) -> AHNCheckpointConfig:
    """Read and validate ``config.json`` of a checkpoint folder or Hub repo.

    Asserts ``_layer_implementation`` (a known base family, consistent with ``model_type``); never takes
    window or sinks from the config.
    """
    folder = resolve_checkpoint(path_or_repo, revision=revision)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise AHNCheckpointError(f"{str(path_or_repo)!r}: no {CONFIG_NAME} in {folder}")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AHNCheckpointError(f"{path}: not a valid JSON config ({e})") from None
    return parse_ahn_config(doc)


# --------------------------------------------------------------------------------------------------
# load


def load_ahn_state_dict(path_or_repo: str | os.PathLike, model: nn.Module, strict: bool = True, *,
                        revision: str | None = None) -> LoadReport:
    """Load a released-format checkpoint into the model's attached AHN cells.

    The checkpoint's ``_layer_implementation`` must be the model's family (a Qwen3 checkpoint loads onto a Qwen3
    base only). Accepts fp32/bf16/fp16 tensors and casts to each parameter's dtype. Strict (default): every AHN key
    in the file consumed, every AHN parameter present; any violation raises :class:`AHNCheckpointError`
    naming the keys. Shape mismatches always raise (expected vs found shape).
    """
    from safetensors.torch import load_file

    folder = resolve_checkpoint(path_or_repo, revision=revision)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise AHNCheckpointError(f"{str(path_or_repo)!r}: no {WEIGHTS_NAME} in {folder} (found: {present})")

    config = None
    if (folder / CONFIG_NAME).is_file():
        config = parse_ahn_config(json.loads((folder / CONFIG_NAME).read_text()))
        if config.ignored:
            log.info("ignoring training-only config keys %s (sinks and window are set explicitly)",
                     sorted(config.ignored))
        check_base_family(config, model, f"checkpoint {str(path_or_repo)!r}")
        kinds = {c.kind for c in _cells(model)}
        if kinds and kinds != {config.cell_kind}:
            raise AHNCheckpointError(f"checkpoint {str(path_or_repo)!r} is AHN-{config.ahn_implementation} "
                                     f"but the model's AHN cells are {sorted(kinds)}")

    expected = ahn_state_dict(model, keep_vars=True)
    if not expected:
        raise AHNCheckpointError("the model has no AHN parameters (no state-dict key contains '.ahn.'); "
                                 "attach AHN cells before loading")
    try:
        raw = load_file(str(weights))
    except Exception as e:  # safetensors' own error type: a truncated or foreign file
        if type(e).__name__ != "SafetensorError" and not isinstance(e, OSError):
            raise
        raise AHNCheckpointError(f"{weights}: not a whole safetensors file ({e}); re-download or re-save the "
                                 "checkpoint") from None
    found = {canonical_key(k): v for k, v in raw.items()}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = [(k, tuple(expected[k].shape), tuple(found[k].shape))
                  for k in sorted(set(expected) & set(found)) if tuple(expected[k].shape) != tuple(found[k].shape)]
    bad_dtype = [(k, found[k].dtype) for k in sorted(set(expected) & set(found)) if not found[k].is_floating_point()]

    problems = []
    if mismatched:
        problems.append("shape mismatch (key: expected vs found): "
                        + "; ".join(f"{k}: {list(e)} vs {list(f)}" for k, e, f in mismatched[:_MAX_LISTED]))
    if bad_dtype:
        problems.append("non-float tensors: " + ", ".join(f"{k} ({d})" for k, d in bad_dtype))
    nonfinite = [k for k in sorted(set(expected) & set(found))
                 if found[k].is_floating_point() and not bool(torch.isfinite(found[k]).all())]
    if nonfinite:  # NaN/inf weights give NaN logits on every sample: refuse them here, before any sample runs
        problems.append(f"non-finite values (NaN or inf) in {len(nonfinite)} tensor(s): {_listed(nonfinite)}")
    if strict and missing:
        problems.append(f"missing AHN keys ({len(missing)}): {_listed(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys in the checkpoint ({len(unexpected)}): {_listed(unexpected)}")
    if problems:
        raise AHNCheckpointError(f"cannot load AHN checkpoint {str(path_or_repo)!r} ({weights}):\n  "
                                 + "\n  ".join(problems))

    loaded = sorted(set(expected) & set(found))
    with torch.no_grad():
        for k in loaded:
            expected[k].copy_(found[k].to(dtype=expected[k].dtype))
    if missing or unexpected:
        log.warning("non-strict AHN load from %s: %d missing, %d unexpected keys", weights, len(missing),
                    len(unexpected))
    return LoadReport(source=folder, loaded=tuple(loaded), missing=tuple(missing), unexpected=tuple(unexpected),
                      config=config)
