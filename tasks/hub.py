"""Finding benchmark files: a local folder, the harness cache, or the Hugging Face Hub at a pinned revision.

Why a module of its own: every adapter needs the same three guarantees. (1) A local copy always wins and
never touches the network (``--data-dir``; the cache folder ``$AHN_HARNESS_DATA`` or
``~/.cache/ahn-harness``). (2) Offline or unreachable, loading fails at once with a message that says which
files are needed and where to put them, instead of hanging on timeouts. (3) What was read (local path, or
Hub repo + resolved commit) is recorded so the run manifest can store the dataset revision.

Files are fetched raw with ``hf_hub_download(repo_type="dataset")``: LV-Eval is a loading-script dataset that
``datasets>=4`` cannot run, and InfiniteBench's ``load_dataset`` stringifies numeric labels.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ENV_DATA = "AHN_HARNESS_DATA"

HUB_REPOS: dict[str, str] = {
    "lveval": "Infinigence/LVEval",
    "infinitebench": "xinrongzhang2022/InfiniteBench",
    "longbench": "zai-org/LongBench",
}

# Every Hub revision the project reads, in this one place (datasets here; base models and AHN checkpoints in
# MODEL_REVISIONS below, read by `harness.loading` and `python -m harness download`). A 40-hex value is a commit:
# the snapshot folder name that several independent public Hugging Face caches hold for that repo. "main" means
# NOT PINNED: no commit could be verified offline; replace it by the commit `hf download` prints to pin it. The
# resolved commit of every download is recorded in the samples anyway (``extra["data"]``), so runs stay
# traceable.
DATASET_REVISIONS: dict[str, str] = {
    "lveval": "main",  # not pinned: no commit of Infinigence/LVEval known offline
    "infinitebench": "main",  # not pinned: no commit of xinrongzhang2022/InfiniteBench known offline
    "longbench": "5e628be450b7e67fb7ae6e201bd6d8f7056f7672",  # zai-org/LongBench (data.zip)
}

#: Revisions of the base models and AHN checkpoints the paper presets name (Hub id -> revision).
MODEL_REVISIONS: dict[str, str] = {
    "Qwen/Qwen2.5-3B-Instruct": "aa8e72537993ba99e69dfaafa59ed015b17504d1",
    "Qwen/Qwen2.5-7B-Instruct": "a09a35458c702b33eeacc393d103063234e8bc28",
    "Qwen/Qwen2.5-14B-Instruct": "cf98f3b3bbb457ad9e2bb7baf9a0125b6b88caa8",
    # the nine ByteDance-Seed/AHN-* checkpoints: not pinned (no commit known offline); "main" is read
}


def model_revision(repo: str) -> str:
    """The pinned revision of a model or AHN checkpoint repo ("main" when none is pinned)."""
    return MODEL_REVISIONS.get(repo, "main")


PROBE_TIMEOUT_S = 3.0


class DataUnavailableError(FileNotFoundError):
    """The benchmark files are neither local nor downloadable now."""


@dataclass(frozen=True)
class DataFile:
    """One file an adapter reads, with where it came from."""

    path: Path
    family: str
    filename: str
    origin: str  # "local" (data_dir or cache folder) or "hub"
    repo: str | None = None
    revision: str | None = None  # requested revision (hub)
    commit: str | None = None  # resolved commit (hub cache), when known

    def provenance(self) -> dict[str, Any]:
        """Short JSON-able record for ``Sample.extra["data"]`` and the run manifest."""
        if self.origin == "hub":
            return {"origin": "hub", "repo": self.repo, "revision": self.revision, "commit": self.commit,
                    "file": self.filename}
        return {"origin": "local", "path": str(self.path)}


def cache_root() -> Path:
    """The harness data cache: ``$AHN_HARNESS_DATA`` or ``~/.cache/ahn-harness``."""
    env = os.environ.get(ENV_DATA)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ahn-harness"


def is_offline() -> bool:
    """True when the user asked for no network (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    return False


def local_dirs(family: str, data_dir: str | Path | None) -> list[Path]:
    """Folders searched for a local copy: ``data_dir`` (and ``data_dir/<family>``) if given, else the cache
    folder's ``<family>/``. An explicit ``data_dir`` is the only place looked at, so a typo never triggers a
    download."""
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        return [d, d / family]
    return [cache_root() / family]


def find_local(family: str, data_dir: str | Path | None, relpaths: Iterable[str]) -> Path | None:
    """The first of ``relpaths`` that exists in one of :func:`local_dirs`."""
    rels = list(relpaths)
    for d in local_dirs(family, data_dir):
        for rel in rels:
            p = d / rel
            if p.is_file():
                return p
    return None


def _hub_url(family: str, filename: str) -> str:
    return f"https://huggingface.co/datasets/{HUB_REPOS[family]}/resolve/{DATASET_REVISIONS[family]}/{filename}"


def unavailable_message(family: str, filenames: Sequence[str], data_dir: str | Path | None, why: str) -> str:
    """The error text: which dataset, which files, and how to point the harness at a local copy."""
    files = ", ".join(filenames)
    urls = "\n".join(f"  {_hub_url(family, f)}" for f in filenames[:6])
    more = f"\n  ... ({len(filenames) - 6} more)" if len(filenames) > 6 else ""
    where = (
        f"looked in --data-dir {data_dir} (and {Path(data_dir) / family})"
        if data_dir is not None
        else f"looked in the cache {cache_root() / family}"
    )
    return (
        f"{family} data unavailable ({why}): need {files}.\n{where}.\n"
        f"Download from (revision {DATASET_REVISIONS[family]}):\n{urls}{more}\n"
        f"then pass --data-dir <folder holding them> (data_dir=...), or put them under "
        f"${ENV_DATA}/{family}/ (currently {cache_root()})."
    )


def _commit_from_path(path: Path) -> str | None:
    parts = path.parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def _hub_reachable() -> bool:
    """A quick TCP probe so an unreachable Hub fails in seconds, not after long HTTP timeouts."""
    try:
        from huggingface_hub import constants

        endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    except Exception:  # pragma: no cover - huggingface_hub missing
        return False
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def fetch(family: str, filenames: Sequence[str], data_dir: str | Path | None = None) -> list[DataFile]:
    """Local path of each Hub file of ``family`` (``filenames`` relative to the dataset repo root).

    Order: the local folders (a file with the same name), the Hub cache under the cache folder (no network),
    then, unless offline, a download at ``DATASET_REVISIONS[family]``. With ``data_dir`` given nothing is
    downloaded. Raises :class:`DataUnavailableError` naming every missing file at once.
    """
    if family not in HUB_REPOS:
        raise ValueError(f"unknown dataset family {family!r}; valid: {', '.join(sorted(HUB_REPOS))}")
    repo, rev = HUB_REPOS[family], DATASET_REVISIONS[family]
    hub_cache = cache_root() / "hub"
    found: dict[str, DataFile] = {}
    missing: list[str] = []
    for name in filenames:
        local = find_local(family, data_dir, [name, Path(name).name])
        if local is not None:
            found[name] = DataFile(local, family, name, "local")
            continue
        if data_dir is None:
            cached = _cached(repo, name, rev, hub_cache)
            if cached is not None:
                found[name] = DataFile(cached, family, name, "hub", repo, rev, _commit_from_path(cached))
                continue
        missing.append(name)
    if not missing:
        return [found[n] for n in filenames]
    if data_dir is not None:
        raise DataUnavailableError(unavailable_message(family, missing, data_dir, "not in --data-dir"))
    if is_offline():
        raise DataUnavailableError(unavailable_message(family, missing, data_dir, "offline: HF_HUB_OFFLINE is set"))
    if not _hub_reachable():
        raise DataUnavailableError(unavailable_message(family, missing, data_dir, "the Hugging Face Hub is unreachable"))
    from huggingface_hub import hf_hub_download

    for name in missing:
        try:
            path = Path(hf_hub_download(repo, name, repo_type="dataset", revision=rev, cache_dir=str(hub_cache)))
        except Exception as exc:
            raise DataUnavailableError(
                unavailable_message(family, missing, data_dir, f"download failed: {type(exc).__name__}: {exc}")
            ) from exc
        found[name] = DataFile(path, family, name, "hub", repo, rev, _commit_from_path(path))
    return [found[n] for n in filenames]


def _cached(repo: str, filename: str, revision: str, cache_dir: Path) -> Path | None:
    """The file from the Hub cache, without any network access."""
    if not cache_dir.is_dir():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except Exception:  # pragma: no cover
        return None
    got = try_to_load_from_cache(repo, filename, cache_dir=str(cache_dir), revision=revision, repo_type="dataset")
    return Path(got) if isinstance(got, str) else None
