"""Checks of a command's settings that run before any weights are read.

A bad value found after minutes of loading a 3B model, or after a run folder was created, costs the user the
load and a folder the corrected command refuses; so ``harness run`` checks here, in seconds: numbers in range,
a device that exists on this machine, a dtype, model and checkpoint folders that can be read (``config.json``
parses, weight files exist and their safetensors headers are whole), and an output folder that accepts a
write. Every failure is a ``SettingsError`` (a ``ValueError``) naming the bad value and the valid ones.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path


class SettingsError(ValueError):
    """A command-line setting that cannot work; the message names the value and what would be valid."""


def check_int(name: str, value: int | None, minimum: int, maximum: int | None = None) -> None:
    """``value`` is None (not given) or an integer >= ``minimum`` (and <= ``maximum`` when given)."""
    if value is not None and value < minimum:
        raise SettingsError(f"{name} {value}: must be an integer >= {minimum}")
    if value is not None and maximum is not None and value > maximum:
        raise SettingsError(f"{name} {value}: must be an integer <= {maximum} (the limit)")


MAX_BATCH_SIZE = 1024  # rows of the static decoder: each holds a whole cache


def check_positive_float(name: str, value: float | None, hint: str = "") -> None:
    """``value`` is None (not given) or a finite number > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise SettingsError(f"{name} {value}: must be a finite number > 0{hint}")


def check_device(device: str | None) -> None:
    """``auto``, ``cpu``, or an accelerator that this machine has (``cuda``, ``cuda:N`` below the GPU count)."""
    if device in (None, "auto", "cpu"):
        return
    import torch

    valid = "auto, cpu" + (", cuda, " + ", ".join(f"cuda:{i}" for i in range(torch.cuda.device_count()))
                           if torch.cuda.is_available() else "")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise SettingsError(f"--device {device!r} is not a device; valid here: {valid}") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingsError(f"--device {device!r}: no CUDA GPU is usable on this machine; valid here: {valid}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SettingsError(f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                                f"device(s); valid here: {valid}")
        return
    raise SettingsError(f"--device {device!r}: the harness runs on cpu or cuda; valid here: {valid}")


def check_dtype(dtype: str | None) -> None:
    valid = ("auto", "float32", "bfloat16", "float16")
    if dtype is not None and dtype not in valid:
        raise SettingsError(f"--dtype {dtype!r}: valid dtypes are {', '.join(valid)}")


def check_writable_folder(folder: Path, flag: str = "--output") -> None:
    """Create ``folder`` if needed and write (and fsync) a probe file in it: a read-only or full disk fails here."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SettingsError(f"{flag} {folder}: exists and is not a folder; pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        try:
            os.write(fd, b"0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
        raise SettingsError(f"{flag} {folder}: cannot write there ({why}); pass a folder you can write to") from None


def output_path(text: str) -> Path:
    """An ``--output`` argument (argparse ``type=``): an empty string would mean the current folder."""
    if not text.strip():
        raise SettingsError("'' is empty (it would mean the current folder); pass a folder")
    return Path(text)


def check_run_output(folder: Path, n_presets: int) -> None:
    """Refuse an existing non-empty ``folder`` that is not a run (one preset: no ``manifest.json``) or not a job
    root (several presets: no ``report.json`` and no sub-folder holding a run): its files would be overwritten."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not entries:
        return
    if n_presets == 1:
        if (folder / "manifest.json").is_file():
            return
        what = "a run (no manifest.json)"
    else:
        if (folder / "report.json").is_file() or any((p / "manifest.json").is_file() for p in entries if p.is_dir()):
            return
        what = "a job's results (no report.json, no run folder)"
    shown = ", ".join(sorted(p.name for p in entries)[:5]) + (", …" if len(entries) > 5 else "")
    raise SettingsError(f"--output {folder}: holds files ({shown}) but is not {what}; refusing to write over "
                        "them; pass a new or empty folder, or a run folder to resume")


def check_writable_file(path: Path, flag: str = "--output") -> None:
    """An existing output file opens for writing (unchanged), or its folder accepts a new file."""
    path = Path(path)
    if path.is_dir():
        raise SettingsError(f"{flag} {path}: is a folder; pass a file name")
    if path.exists():
        try:
            with open(path, "ab"):
                return
        except OSError as e:
            raise SettingsError(f"{flag} {path}: cannot write it ({e.strerror or e}); pass a file you can "
                                "write to") from None
    check_writable_folder(path.parent if str(path.parent) else Path("."), flag=f"{flag} {path}: its folder")


def _check_safetensors(path: Path) -> None:
    """The header parses and covers the file (safetensors checks both on open, reading no tensor data)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np"):
            pass
    except (SafetensorError, OSError) as e:
        raise SettingsError(f"{path}: not a whole safetensors file ({e}); re-download or re-save it") from None


def _read_config(folder: Path, what: str) -> dict:
    cfg = folder / "config.json"
    try:
        doc = json.loads(cfg.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{what} folder {folder} has no config.json; pass a model folder "
                            "(config.json + *.safetensors) or a Hub id") from None
    except (OSError, ValueError) as e:
        raise SettingsError(f"{cfg}: not a valid JSON config ({e}); re-download or re-save the {what}") from None
    if not isinstance(doc, dict) or not doc:
        raise SettingsError(f"{cfg}: empty or not a JSON object; re-download or re-save the {what}")
    return doc


def _check_path_like(name: str, flag: str, what: str) -> None:
    """A missing path that cannot be a Hub id (absolute, relative with ./ or ../, or a file) is an error now."""
    p = Path(name)
    if name.startswith(("/", "./", "../", "~")) or p.exists():
        if p.exists() and not p.is_dir():
            raise SettingsError(f"{flag} {name}: is a file; pass {what}")
        raise SettingsError(f"{flag} {name}: no such folder; pass {what} or a Hub id (owner/name)")


def check_model_folder(folder: str | os.PathLike, what: str = "model") -> None:
    """A local model folder transformers can load: a config and whole safetensors weights (index or single file)."""
    folder = Path(folder)
    if not folder.is_dir():
        _check_path_like(str(folder), "--model", "a model folder")
        return  # a Hub id: checked when it is located
    _read_config(folder, what)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and sorted(folder.glob("pytorch_model*.bin")):  # unpickling runs code: safetensors only
        raise SettingsError(f"{what} folder {folder} holds its weights only as torch pickles (pytorch_model*.bin), "
                            "which can run code when loaded; the harness reads safetensors: re-save the model "
                            "with save_pretrained(folder, safe_serialization=True)")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise SettingsError(f"{index}: unreadable weight index ({e})") from None
        missing = sorted(n for n in names if not (folder / n).is_file())
        if missing:
            raise SettingsError(f"{what} folder {folder}: weight files listed in {index.name} are missing: "
                                f"{', '.join(missing[:5])}")
        weights = [folder / n for n in sorted(names)]
    if not weights:
        raise SettingsError(f"{what} folder {folder} has no *.safetensors weights (found: "
                            f"{', '.join(sorted(p.name for p in folder.iterdir())[:10]) or 'nothing'})")
    for w in weights:
        _check_safetensors(w)


def check_ahn_folder(folder: str | os.PathLike) -> None:
    """A local AHN checkpoint folder: config.json and a whole model.safetensors."""
    folder = Path(folder)
    if not folder.exists():
        _check_path_like(str(folder), "--ahn-checkpoint", "an AHN checkpoint folder")
        return  # a Hub id: checked when it is located
    if not folder.is_dir():
        raise SettingsError(f"--ahn-checkpoint {folder}: not a folder; pass the checkpoint folder")
    _read_config(folder, "AHN checkpoint")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise SettingsError(f"--ahn-checkpoint {folder}: no model.safetensors in it")
    _check_safetensors(weights)


__all__ = ["SettingsError", "check_ahn_folder", "check_device", "check_dtype", "check_int", "check_model_folder",
           "check_positive_float", "check_writable_file", "check_writable_folder"]
