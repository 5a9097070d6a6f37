"""Content hashes: what a per-sample record was computed from, and which weight files a run read.

``record_hashes`` gives the three hashes every per-sample record carries, so ``harness compare`` can refuse to
pair two records that share a key but not their input (another seed, generator, tokenizer or truncation):

* ``prompt_sha256``: SHA-256 of the prompt text as fed (after truncation and chat template), UTF-8;
* ``input_ids_sha256``: SHA-256 of the token ids fed, as the bytes of a little-endian int64 array;
* ``answers_sha256``: SHA-256 of ``json.dumps(answers, ensure_ascii=False, sort_keys=True)``.

``fingerprint_files`` records size and SHA-256 of the files a loader reads from a model or checkpoint folder,
so a resume can tell that the weights behind an unchanged path were replaced (``harness.store``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RECORD_HASH_KEYS = ("prompt_sha256", "input_ids_sha256", "answers_sha256")

# The files the loaders read from a model folder (transformers' config, tokenizer and safetensors weights, one
# file or shards with their index) or an AHN checkpoint (config.json + model.safetensors). Hub downloads fetch
# only these (no .bin / .pth / consolidated / GGUF duplicates), and run manifests fingerprint exactly these.
# Patterns without a "/" match top-level files only, as fnmatch and the Hub client apply them.
LOADER_FILE_PATTERNS: tuple[str, ...] = (
    "config.json", "generation_config.json",
    "model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json",
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "vocab.txt", "merges.txt", "*.tiktoken", "chat_template.jinja", "chat_template.json",
)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def record_hashes(prompt: str, input_ids: Sequence[int] | Any, answers: Any) -> dict[str, str]:
    """The three hash fields of a per-sample record (see the module docstring for their exact definition)."""
    ids = np.asarray(input_ids, dtype="<i8").reshape(-1)
    answers_json = json.dumps(answers, ensure_ascii=False, sort_keys=True)
    return {
        "prompt_sha256": sha256_hex(prompt.encode("utf-8")),
        "input_ids_sha256": sha256_hex(ids.tobytes()),
        "answers_sha256": sha256_hex(answers_json.encode("utf-8")),
    }


def _hub_blob_sha256(path: Path) -> str | None:
    """The SHA-256 a Hugging Face cache already names a file by (LFS blobs are content-addressed), if any."""
    if not path.is_symlink():
        return None
    target = Path(os.path.realpath(path))
    if target.parent.name == "blobs" and len(target.name) == 64 and all(c in "0123456789abcdef" for c in target.name):
        return target.name
    return None  # small non-LFS files are named by their git blob hash, not SHA-256


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, streamed (or read off its Hub cache blob name when it has one)."""
    known = _hub_blob_sha256(path)
    if known is not None:
        return known
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fingerprint_files(folder: str | os.PathLike, patterns: Iterable[str] = LOADER_FILE_PATTERNS) -> dict[str, Any]:
    """``{"path": folder, "files": {name: {"size", "sha256"}}}`` for the files in ``folder`` matching ``patterns``.

    Reads every matched byte once (a 3B model's 6 GB take seconds from the page cache the loader just filled),
    except files of a Hugging Face cache snapshot, whose blob names already are their SHA-256.
    """
    root = Path(folder)
    pats = tuple(patterns)
    files: dict[str, Any] = {}
    for p in sorted(root.iterdir()):  # the loaders read the folder's top level only
        if p.name.startswith(".") or not p.is_file():
            continue
        if any(fnmatch.fnmatch(p.name, pat) for pat in pats):
            files[p.name] = {"size": p.stat().st_size, "sha256": file_sha256(p)}
    return {"path": str(root), "files": files}


def changed_files(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Readable differences between two ``fingerprint_files`` results (empty when the contents are equal)."""
    a, b = old.get("files") or {}, new.get("files") or {}
    out = []
    for name in sorted(set(a) | set(b)):
        fa, fb = a.get(name), b.get(name)
        if fa == fb:
            continue
        where = Path(new.get("path") or old.get("path") or ".") / name
        if fa is None:
            out.append(f"{where}: new file (not there when the run started)")
        elif fb is None:
            out.append(f"{where}: removed since the run started")
        else:
            out.append(f"{where}: sha256 {fa['sha256'][:12]}… ({fa['size']:,} B) when the run started, "
                       f"{fb['sha256'][:12]}… ({fb['size']:,} B) now")
    return out


__all__ = ["LOADER_FILE_PATTERNS", "RECORD_HASH_KEYS", "changed_files", "file_sha256", "fingerprint_files",
           "record_hashes", "sha256_hex"]
