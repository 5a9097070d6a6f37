"""Load a preset's tokenizer, base model and memory method, failing fast and clearly when weights are absent.

Hub ids are looked up in the local Hugging Face cache first; offline (`HF_HUB_OFFLINE=1`) a missing model is
an immediate error that names it and says how to point at a local folder. After loading, the method is attached
and checked live (the official LV-Eval script could silently run without it: `docs/DEFECTS.md` D6).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from baselines import attach, is_attached, make_method
from baselines.interface import MemoryMethod
from baselines.precision import check_rope_fp32
from baselines.registry import get_spec
from harness.presets import Preset

log = logging.getLogger(__name__)


class ModelUnavailableError(RuntimeError):
    """The weights or tokenizer are neither local nor reachable."""


class ModelLoadError(ValueError):
    """A model folder that transformers cannot load (corrupt config, missing or truncated weights)."""


@dataclass
class Loaded:
    preset: Preset
    tokenizer: object
    model: nn.Module
    method: MemoryMethod
    device: torch.device
    dtype: torch.dtype
    model_dir: str | None = None  # the local folders the weights were read from
    ahn_dir: str | None = None

    def weight_fingerprints(self) -> dict[str, dict]:
        """Size and SHA-256 of the files read from the model (and AHN checkpoint) folder, for the manifest."""
        from harness.hashing import fingerprint_files

        out = {"model": fingerprint_files(self.model_dir)} if self.model_dir else {}
        if self.model_dir:  # which weights: a Hub release (revision) or a local quantized copy (its hashes)
            from harness.local_models import weights_source

            out["source"] = weights_source(self.model_dir, out["model"])
        if self.ahn_dir:
            out["ahn_checkpoint"] = fingerprint_files(self.ahn_dir)
        return out


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def locate(name_or_path: str, what: str = "model", local_copy: str | None = None) -> str:
    """A local folder, or a Hub id present in the cache (or fetchable when online). `local_copy`: the
    `fetch-model` name of a local copy of that Hub id, used when the Hub cannot be reached."""
    if Path(name_or_path).exists():
        return str(Path(name_or_path))
    if "/" not in name_or_path or name_or_path.startswith(("/", ".")):
        raise ModelUnavailableError(f"{what} folder {name_or_path!r} does not exist")
    from huggingface_hub import snapshot_download

    from harness.hashing import LOADER_FILE_PATTERNS
    from tasks.hub import model_revision

    patterns = list(LOADER_FILE_PATTERNS)  # only what the loaders read: no .bin / .pth duplicates, no extras
    revision = model_revision(name_or_path)  # pinned in tasks/hub.py
    try:
        return snapshot_download(name_or_path, revision=revision, local_files_only=True, allow_patterns=patterns)
    except Exception:  # not cached
        if _offline():
            if local_copy:
                return _local_copy(local_copy, name_or_path, "is not in the local Hugging Face cache and the Hub "
                                                             "is offline (HF_HUB_OFFLINE=1)")
            raise ModelUnavailableError(
                f"{what} {name_or_path!r} (revision {revision}) is not in the local Hugging Face cache and the "
                f"Hub is offline (HF_HUB_OFFLINE=1). Download it on a connected machine (`python -m harness "
                f"download`, or `hf download {name_or_path} --revision {revision}`) and copy the cache, or pass "
                "a local folder instead of the id."
            ) from None
    try:
        return snapshot_download(name_or_path, revision=revision, allow_patterns=patterns)
    except Exception as exc:
        if local_copy:
            return _local_copy(local_copy, name_or_path, f"cannot be fetched from the Hub ({type(exc).__name__})")
        raise ModelUnavailableError(
            f"cannot fetch {what} {name_or_path!r} from the Hub ({type(exc).__name__}: {exc}). "
            "Pass a local folder instead of the id."
        ) from None


def _local_copy(name: str, hub_id: str, why: str) -> str:
    """The built local copy standing in for a Hub id that cannot be had, or an error naming the fetch command."""
    from harness.local_models import built_copy, missing_copy_message

    folder = built_copy(name)
    if folder is None:
        raise ModelUnavailableError(missing_copy_message(name, hub_id, why))
    log.info("%s %s; using its local quantized copy %s (scores are this copy's, not the release's)", hub_id, why,
             folder)
    return str(folder)


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device(f"cuda:{local}")
        return torch.device("cpu")
    return torch.device(device)


def pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    valid = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in valid:
        raise ValueError(f"unknown dtype {dtype!r}; valid: auto, {', '.join(valid)}")
    return valid[dtype]


def build_method(preset: Preset) -> MemoryMethod:
    """The preset's method with the settings the preset sets (the others are the method's defaults)."""
    return make_method(preset.method, **preset.method_settings())


@contextlib.contextmanager
def loaded(preset: Preset, device: str | None = None, dtype: str | None = None) -> Iterator[Loaded]:
    """Tokenizer + model + attached method (+ AHN weights), detached again on exit."""
    from harness.compat import check_transformers

    check_transformers()  # an unsupported transformers is refused by version, before any weights load
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    method = build_method(preset)  # validate settings before touching any weights
    model_dir = locate(preset.model, "model", preset.local_copy)
    ahn_dir = locate(preset.ahn_checkpoint, "AHN checkpoint") if preset.ahn_checkpoint else None
    if get_spec(preset.method).needs_checkpoint and ahn_dir is None:
        raise ValueError(f"{preset.name}: method {preset.method} needs a trained checkpoint (--checkpoint)")
    try:  # the boundary to transformers: any failure here is a folder that cannot be loaded, said in one line
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype, attn_implementation="sdpa")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load the model in {model_dir} ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); re-download or re-save it") from exc
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        raise ModelLoadError(f"cannot load the weights in {model_dir} ({exc}); re-download or re-save them") from exc
    # stock Qwen2 SWA fields are training leftovers in AHN configs: they must not enable HF's own SWA
    if getattr(model.config, "use_sliding_window", False):
        model.config.use_sliding_window = False
    model.to(dev).eval()
    check_rope_fp32(model)  # from_pretrained keeps them fp32; a cast model would drift with position
    with attach(model, method):
        if ahn_dir is not None:  # the method reads its own format (AHN: the released one)
            try:
                method.load_checkpoint(model, ahn_dir)
            except ValueError as exc:
                raise ValueError(f"{preset.name}: checkpoint {preset.ahn_checkpoint}: {exc}") from exc
        if not is_attached(model, method):
            raise RuntimeError(f"{preset.name}: the memory method is not active after loading")
        yield Loaded(preset, tokenizer, model, method, dev, torch_dtype, model_dir, ahn_dir)
