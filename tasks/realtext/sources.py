"""The frozen real-text sources that the repository ships, checked against their manifest before any use.

``data/MANIFEST.json`` names every source (a standard-library module path such as ``json/decoder.py``, a
licence text, a Chinese text), its compressed file under ``data/``, its origin and licence, and the size and
sha256 of its uncompressed bytes. :func:`read_text` decompresses a source and refuses it, with an error that
names it, when its file is missing or its bytes differ from the manifest: a task then never builds samples
from text other than the one its committed hashes were computed on. ``scripts/freeze_realtext.py`` wrote the
data; ``docs/REALTEXT.md`` lists the sources and their licences.
"""

from __future__ import annotations

import hashlib
import json
import lzma
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
MANIFEST = "MANIFEST.json"
KINDS = ("code", "prose_en", "prose_zh")


class SourceError(ValueError):
    """A shipped source is missing, unreadable or not the text its manifest entry describes."""


@dataclass(frozen=True)
class Source:
    """One manifest entry."""

    name: str  # e.g. "json/decoder.py", "common-licenses/GPL-3", "fortunes-zh/chinese"
    file: str  # the compressed file, relative to the data folder
    kind: str  # "code", "prose_en" or "prose_zh"
    origin: str
    licence: str
    licence_file: str
    size: int  # bytes of the uncompressed text
    sha256: str  # of the uncompressed bytes


def _data_dir(data_dir: str | Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else DATA_DIR


@cache
def _manifest(data_dir: Path) -> tuple[Source, ...]:
    path = data_dir / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entries = tuple(Source(**{k: e[k] for k in Source.__dataclass_fields__}) for e in raw["sources"])
    except FileNotFoundError:
        raise SourceError(f"real-text manifest {path} is missing") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"real-text manifest {path} is malformed ({exc})") from None
    for e in entries:
        if e.kind not in KINDS:
            raise SourceError(f"real-text source {e.name!r} has unknown kind {e.kind!r}; valid: {', '.join(KINDS)}")
    return entries


def sources(kind: str | None = None, data_dir: str | Path | None = None) -> tuple[Source, ...]:
    """The manifest's sources (of one ``kind``), in manifest order."""
    entries = _manifest(_data_dir(data_dir))
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown source kind {kind!r}; valid: {', '.join(KINDS)}")
    return tuple(e for e in entries if kind is None or e.kind == kind)


def get_source(name: str, data_dir: str | Path | None = None) -> Source:
    known = {e.name: e for e in sources(data_dir=data_dir)}
    if name not in known:
        raise SourceError(f"unknown real-text source {name!r}; valid: {', '.join(known)}")
    return known[name]


@cache
def _read(data_dir: Path, name: str) -> str:
    src = get_source(name, data_dir)
    path = data_dir / src.file
    try:
        raw = lzma.decompress(path.read_bytes())
    except FileNotFoundError:
        raise SourceError(f"real-text source {name!r} is missing: no file {path}") from None
    except lzma.LZMAError as exc:
        raise SourceError(f"real-text source {name!r} is corrupt: {path} does not decompress ({exc})") from None
    digest = hashlib.sha256(raw).hexdigest()
    if len(raw) != src.size or digest != src.sha256:
        raise SourceError(
            f"real-text source {name!r} ({path}) does not match its manifest: {len(raw)} bytes with sha256 "
            f"{digest}, expected {src.size} bytes with sha256 {src.sha256}"
        )
    return raw.decode("utf-8")


def read_text(name: str, data_dir: str | Path | None = None) -> str:
    """The verified text of source ``name`` (decompressed once per process)."""
    return _read(_data_dir(data_dir), name)


def eval_source_hashes() -> set[str]:
    """sha256 of every shipped source's uncompressed bytes (to keep training text disjoint from the haystacks)."""
    return {e.sha256 for e in sources()}


def eval_source_names() -> set[str]:
    """Every shipped source's name: standard-library module paths (``json/decoder.py``), licence and text names."""
    return {e.name for e in sources()}
