"""Training text that needs no download: the Python source every machine already has, packed into sequences.

A code base is the distribution of the code models (Qwen2.5-Coder) this project distils on, and long Python
files are real long documents whose later parts refer to what came much earlier (imports, class attributes,
helpers), which is what a memory has to carry past the window. The roots are named, not guessed:

* ``stdlib``: the interpreter's standard library (``sysconfig.get_paths()["stdlib"]``);
* ``site:<package>``: an installed top-level package's folder (e.g. ``site:torch``, ``site:transformers``),
  found without importing it.

Content-addressed and deterministic: the files of the roots (``*.py``, more than ``min_tokens`` tokens) are put
in a seeded order, tokenised one after another with ``<|endoftext|>`` (else the EOS) between files, and cut into
rows of ``seq_len`` tokens until ``max_sequences`` rows are full. The manifest lists every file used (its label, sha256,
bytes and tokens), in order, and one sha256 over that list; it is written beside the checkpoint.

Disjoint from every evaluation haystack: a file whose sha256 or root-relative path is among the real-text
evaluation sources (``tasks.realtext.sources.eval_source_hashes()`` / ``eval_source_names()``) is left out and
listed as excluded. When those sources cannot be imported the corpus refuses to build, instead of training on
text that may be evaluated on.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import random
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ahn.train.data import DataError, Example, Source

EVAL_SOURCES_MODULE = "tasks.realtext.sources"
DOCUMENT_SEPARATOR = "<|endoftext|>"
DEFAULT_ROOTS: tuple[str, ...] = ("stdlib", "site:torch", "site:transformers")
_SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages"}  # stdlib holds the venv's site-packages on some hosts


@dataclass(frozen=True)
class SourceFile:
    label: str  # "stdlib/json/decoder.py", "site/torch/nn/modules/linear.py": root kind + root-relative path
    relpath: str  # path relative to the root folder (stdlib) or to site-packages (a package: "torch/...")
    path: Path


@dataclass(frozen=True)
class Exclusions:
    """What the evaluation uses: sha256 hex digests of whole files and root-relative paths."""

    hashes: frozenset[str]
    names: frozenset[str]

    def __post_init__(self) -> None:
        # a name may carry a prefix ("Lib/json/decoder.py", "/usr/lib/python3.11/json/decoder.py"): a file matches
        # when its root-relative path is the name or one of the name's trailing runs of whole path parts
        tails = set()
        for name in self.names:
            parts = name.replace("\\", "/").strip("/").split("/")
            tails.update("/".join(parts[i:]) for i in range(len(parts)))
        object.__setattr__(self, "_tails", frozenset(tails))

    def reason(self, sha: str, relpath: str) -> str | None:
        if sha in self.hashes:
            return "sha256 is an evaluation source"
        if relpath in self._tails:
            return "path is an evaluation source"
        return None


def eval_exclusions(module: str = EVAL_SOURCES_MODULE) -> Exclusions:
    """The evaluation sources to keep out of training; a DataError (refusing to train) when they cannot be read."""
    try:
        mod = importlib.import_module(module)
        hashes, names = mod.eval_source_hashes(), mod.eval_source_names()
    except (ImportError, AttributeError) as e:
        raise DataError(
            f"refusing to build the Python-source training corpus: the evaluation sources ({module}."
            f"eval_source_hashes / eval_source_names) cannot be read ({type(e).__name__}: {e}), so the training "
            f"text cannot be checked disjoint from the evaluation haystacks") from None
    return Exclusions(frozenset(str(h).lower() for h in hashes), frozenset(str(n) for n in names))


def root_folder(root: str) -> tuple[Path, Path]:
    """(folder to walk, folder relative paths are taken from) for a root name."""
    if root == "stdlib":
        folder = Path(sysconfig.get_paths()["stdlib"])
        return folder, folder
    if root.startswith("site:") and root[5:]:
        name = root[5:]
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise DataError(f"root {root!r}: no installed package {name!r} (a folder) here")
        folder = Path(list(spec.submodule_search_locations)[0])
        return folder, folder.parent
    raise DataError(f"unknown source root {root!r}; valid: 'stdlib' or 'site:<package>' (e.g. site:torch)")


def list_files(roots: Sequence[str], min_file_bytes: int = 0) -> list[SourceFile]:
    """Every ``*.py`` of the roots at least ``min_file_bytes`` long, sorted by label (duplicates dropped)."""
    files: dict[str, SourceFile] = {}
    for root in roots:
        folder, rel_to = root_folder(root)
        kind = "stdlib" if root == "stdlib" else "site"
        for p in folder.rglob("*.py"):
            rel = p.relative_to(rel_to)
            if any(part in _SKIP_DIRS for part in rel.parts[:-1]) or not p.is_file():
                continue
            if p.stat().st_size < min_file_bytes:
                continue
            label = f"{kind}/{rel.as_posix()}"
            files.setdefault(label, SourceFile(label, rel.as_posix(), p))
    return [files[k] for k in sorted(files)]


def _encode_many(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    if callable(tokenizer) and getattr(tokenizer, "is_fast", False):
        return [list(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    out = []
    for t in texts:
        ids = tokenizer.encode(t, add_special_tokens=False)
        out.append(list(ids["input_ids"] if isinstance(ids, dict) else ids))
    return out


def separator_id(tokenizer: Any) -> int:
    """The token between files: the document separator ``<|endoftext|>`` where the vocabulary has one (an
    instruct model's EOS ends a chat turn instead), else the EOS."""
    convert = getattr(tokenizer, "convert_tokens_to_ids", None)
    if convert is not None:
        tid = convert(DOCUMENT_SEPARATOR)
        if isinstance(tid, int) and tid != getattr(tokenizer, "unk_token_id", None):
            return tid
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise DataError(f"the tokenizer has neither {DOCUMENT_SEPARATOR} nor an eos_token_id to separate files")
    return eos


class PythonSourceCorpus(Source):
    """Rows of ``seq_len`` tokens of real Python source; see the module docstring."""

    def __init__(self, tokenizer: Any, seq_len: int, max_sequences: int, *, roots: Sequence[str] = DEFAULT_ROOTS,
                 min_tokens: int = 2048, seed: int = 0, exclusions: Exclusions | None = None,
                 batch_files: int = 64, progress: Callable[[str], None] | None = None) -> None:
        if seq_len < 2 or max_sequences < 1:
            raise DataError(f"seq_len must be >= 2 and max_sequences >= 1, got {seq_len}, {max_sequences}")
        exclusions = exclusions if exclusions is not None else eval_exclusions()
        eos = separator_id(tokenizer)
        self.seq_len, self.roots, self.seed = seq_len, list(roots), seed
        files = list_files(roots, min_tokens + 1)  # a token is at least one byte: shorter files are shorter
        if not files:
            raise DataError(f"no *.py file of more than {min_tokens} bytes under the roots {list(roots)}")
        random.Random(f"ahn-pysource/{seed}").shuffle(files)
        need = seq_len * max_sequences
        stream: list[int] = []
        used: list[dict[str, Any]] = []
        excluded: list[dict[str, str]] = []
        pos = 0
        while len(stream) < need and pos < len(files):
            group = files[pos:pos + batch_files]
            pos += len(group)
            texts, kept = [], []
            for f in group:
                data = f.path.read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                why = exclusions.reason(sha, f.relpath)
                if why is None:
                    try:
                        text = data.decode("utf-8")
                    except UnicodeDecodeError:
                        why = "not UTF-8"
                if why is not None:
                    excluded.append({"path": f.label, "sha256": sha, "reason": why})
                    continue
                texts.append(text)
                kept.append((f, sha, len(data)))
            for (f, sha, n_bytes), ids in zip(kept, _encode_many(tokenizer, texts)):
                if len(stream) >= need:
                    break
                if len(ids) <= min_tokens:  # long documents only (data.filter_len)
                    continue
                ids.append(eos)
                used.append({"path": f.label, "sha256": sha, "bytes": n_bytes, "tokens": len(ids)})
                stream.extend(ids)
            if progress is not None:
                progress(f"python source: {len(used)} files, {min(len(stream), need):,}/{need:,} tokens")
        n_rows = min(max_sequences, len(stream) // seq_len)
        if n_rows == 0:
            raise DataError(f"the roots {list(roots)} hold {len(stream)} tokens, fewer than one sequence of "
                            f"{seq_len}")
        self.rows = torch.tensor(stream[: n_rows * seq_len], dtype=torch.int32).view(n_rows, seq_len)
        self.size = n_rows
        self.files, self.excluded = used, excluded
        listing = json.dumps([[u["path"], u["sha256"]] for u in used], separators=(",", ":"))
        self.sha256 = hashlib.sha256(listing.encode()).hexdigest()

    def get(self, index: int) -> Example:
        ids = self.rows[index].tolist()
        return {"input_ids": ids, "labels": list(ids)}

    def describe(self) -> dict[str, Any]:
        return {"source": "pysource", "roots": self.roots, "files": len(self.files), "sequences": self.size,
                "seq_len": self.seq_len, "tokens": self.size * self.seq_len, "sha256": self.sha256}

    def manifest(self) -> dict[str, Any]:
        """What was trained on: every file in order (label, sha256, bytes, tokens), the excluded ones, the total."""
        roots = {r: str(root_folder(r)[0]) for r in self.roots}
        return {**self.describe(), "root_folders": roots, "seed": self.seed,
                "tokens_read": sum(f["tokens"] for f in self.files), "files_used": self.files,
                "files_excluded": self.excluded}

    def write_manifest(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.manifest(), indent=1) + "\n")
        return p


def parse_roots(text: str | None) -> list[str]:
    """``data.path`` of the pysource source: comma-separated roots (empty: the defaults)."""
    if not text:
        return list(DEFAULT_ROOTS)
    return [r.strip() for r in text.split(",") if r.strip()]
