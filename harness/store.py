"""The results store: a run is a folder of ``manifest.json`` plus one JSON line per sample.

Layout::

    RUN/manifest.json                  what was run (harness.provenance.make_manifest), with the weight
                                       fingerprints a resume checks (``weights``, harness.hashing)
    RUN/.lock                          held while a process decides to create or resume the run
    RUN/samples.jsonl                  one object per sample, unique ``key``
    RUN/samples.rank{r}-of{w}.jsonl    one file per process of a sharded job, until merge_shards

Why it is shaped like this:

* Append-only lines with flush + fsync after each sample: a ``kill -9`` loses at most the sample in flight.
  A crash can leave a torn last line (no newline, or garbage); the writer truncates it on resume and readers
  ignore it, so a sample is never half-counted and never duplicated.
* Resume is by sample key, independent of the number of processes: every process sees the keys done in every
  file of the folder, so a job restarted with a different world size skips exactly what is done.
* Processes starting at one instant serialise on ``RUN/.lock``: one creates the run, the others resume it
  (same settings, once its writer is gone) or are refused without writing anything.
* Each process writes only its own file (an advisory lock stops two writers on one file), so shards need no
  coordination; ``merge_shards`` folds them into ``samples.jsonl`` atomically.
* Duplicate keys (a retried failure, a crash between merge and cleanup) resolve deterministically: the last
  line wins within a file, later files win over earlier ones, and a failed line never replaces an ok one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.hashing import changed_files
from harness.provenance import (
    collect_provenance,
    config_hash,
    diff_configs,
    manifest_config,
    manifest_hash,
    run_label,
)
from tasks.safe_write import UnsafeWriteError, check_target, fsync_dir, open_append, write_atomic

try:  # POSIX advisory locks; elsewhere writers are trusted not to collide
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
LOCK = ".lock"  # held while a process decides to create or resume the run
_SHARD_RE = re.compile(r"^samples\.rank(\d+)-of(\d+)\.jsonl$")


class RunError(ValueError):
    """A run folder that cannot be used as asked (wrong settings, not a run, corrupt manifest)."""


class ConfigMismatchError(RunError):
    """The folder holds a run of different settings; resuming would mix two experiments."""


class WeightsChangedError(ConfigMismatchError):
    """The weight files behind the run's model or checkpoint path changed since the run started."""


@dataclass
class Run:
    """A loaded run: its manifest and its deduplicated per-sample records."""

    manifest: dict[str, Any]
    records: list[dict[str, Any]]
    path: Path | None = None
    torn_lines: int = 0
    bad_lines: int = 0

    @property
    def label(self) -> str:
        """The method name plots and tables show (manifest label / preset / method, else the folder)."""
        return run_label(self.manifest, fallback=self.path.name if self.path else "run")


# ---------------------------------------------------------------------------------------------- records


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy to Python, sets to sorted lists, NaN/inf to None (strict JSON), other objects to str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return [_clean(v) for v in sorted(value, key=str)]
    tolist = getattr(value, "tolist", None)  # numpy scalar or array
    if callable(tolist):
        return _clean(tolist())
    # Anything else is kept as its text: losing hours of a run to an odd type in `extra` is worse.
    return str(value)


def encode_record(record: dict[str, Any]) -> bytes:
    """One line of samples.jsonl, newline-terminated."""
    key = record.get("key")
    if not isinstance(key, str) or not key:
        raise RunError(f"a sample record needs a non-empty string 'key'; got {key!r}")
    line = json.dumps(_clean(record), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return line.encode("utf-8") + b"\n"


@dataclass
class _Scan:
    records: list[dict[str, Any]] = field(default_factory=list)
    good_end: int = 0  # byte offset just past the last valid line
    torn: int = 0  # an unterminated or unparsable tail (a crash mid-write)
    bad: int = 0  # unparsable lines in the middle of the file (skipped)


def _scan(path: Path) -> _Scan:
    """Parse a samples file, separating valid lines from a torn tail left by a crash."""
    scan = _Scan()
    if not path.exists():
        return scan
    data = path.read_bytes()
    pos = 0
    pending_bad: list[int] = []  # offsets of bad lines not yet followed by a good one
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:  # no newline: the write was cut short
            scan.torn += 1
            break
        raw = data[pos:nl]
        pos = nl + 1
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
            if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                raise ValueError("not a sample record")
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            pending_bad.append(pos)
            continue
        scan.bad += len(pending_bad)
        pending_bad.clear()
        scan.records.append(rec)
        scan.good_end = pos
    # Bad lines after the last good one are the crash's debris (e.g. a zero-filled block), not corruption.
    scan.torn += len(pending_bad)
    return scan


def _better(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether ``new`` (written later) replaces ``old``: yes, unless it is a failure replacing a success."""
    return not (_is_ok(old) and not _is_ok(new))


def _is_ok(rec: dict[str, Any]) -> bool:
    return rec.get("status", "ok") == "ok"


def _natural(s: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def order_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """The stable order of records: the runner's sample ``index`` when present, then the key (natural order).

    Both a single process and a merged sharded job therefore list the same samples in the same order.
    """
    index = record.get("index")
    has_index = isinstance(index, int) and not isinstance(index, bool)
    return (0 if has_index else 1, index if has_index else 0, _natural(record["key"]))


def dedupe(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per key (later wins, never failed over ok), sorted by ``order_key``."""
    best: dict[str, dict[str, Any]] = {}
    for rec in records:
        old = best.get(rec["key"])
        if old is None or _better(old, rec):
            best[rec["key"]] = rec
    return sorted(best.values(), key=order_key)


def sample_files(path: Path) -> list[Path]:
    """The samples files of a run in precedence order: the merged file, then shards by (world, rank)."""
    path = Path(path)
    shards = []
    for p in path.glob("samples.rank*-of*.jsonl"):
        m = _SHARD_RE.match(p.name)
        if m:
            shards.append((int(m.group(2)), int(m.group(1)), p))
    main = [path / SAMPLES] if (path / SAMPLES).exists() else []
    return main + [p for _, _, p in sorted(shards)]


def scan_files(path: Path | str) -> list[tuple[Path, _Scan]]:
    """Each samples file of a run with its raw scan: every valid line (duplicates included), and the counts of
    torn and unparsable lines, for checks that must see what ``load_run`` resolves silently."""
    return [(f, _scan(f)) for f in sample_files(Path(path))]


def writer_active(path: Path | str) -> Path | None:
    """The file of the run a process holds locked right now (its samples writer, or the create/resume lock),
    else None. Read-only: nothing is created."""
    if fcntl is None:  # pragma: no cover - no advisory locks to test
        return None
    path = Path(path)
    for f in [*sample_files(path), path / LOCK]:
        try:
            fd = os.open(f, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return f
        finally:
            os.close(fd)  # releases the probe's own lock
    return None


def _read_all(path: Path) -> tuple[list[dict[str, Any]], int, int]:
    records: list[dict[str, Any]] = []
    torn = bad = 0
    for f in sample_files(path):
        scan = _scan(f)
        records.extend(scan.records)
        torn += scan.torn
        bad += scan.bad
    return records, torn, bad


# ---------------------------------------------------------------------------------------------- manifest


def _write_json_atomic(path: Path, obj: Any) -> None:
    try:
        write_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    except UnsafeWriteError as e:
        raise RunError(str(e)) from e


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a run folder; RunError with the reason when absent or unreadable."""
    mpath = Path(path) / MANIFEST
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise RunError(f"{path}: no {MANIFEST} (not a run folder)") from e
    except (OSError, ValueError, RecursionError) as e:
        raise RunError(f"{mpath}: unreadable manifest ({type(e).__name__ if isinstance(e, RecursionError) else e})") from e
    if not isinstance(manifest, dict):
        raise RunError(f"{mpath}: the manifest is not a JSON object")
    return manifest


# ---------------------------------------------------------------------------------------------- store


class RunStore:
    """Writer (and reader) of one run folder, for one process of a possibly sharded job.

    Use ``RunStore.create_or_resume(path, manifest)``; then skip ``done_keys()``, ``append(record)`` per
    sample and ``close()`` (or use it as a context manager). With ``world > 1`` each rank writes its own
    ``samples.rank{r}-of{w}.jsonl``; call ``merge_shards(path)`` once every rank has finished.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], rank: int = 0, world: int = 1):
        self.path = Path(path)
        self.manifest = manifest
        self.rank, self.world = rank, world
        self.samples_path = self.shard_path(self.path, rank, world)
        self.resumed = False
        self.torn_lines_dropped = 0
        self._done: set[str] = set()
        self._failed: set[str] = set()
        self._fh = None

    # -- construction -------------------------------------------------------------------------------

    @staticmethod
    def shard_path(path: Path | str, rank: int, world: int) -> Path:
        """Where rank ``rank`` of ``world`` processes writes: ``samples.jsonl`` when not sharded."""
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"bad shard rank {rank} of world {world}")
        if world == 1:
            return Path(path) / SAMPLES
        return Path(path) / f"samples.rank{rank}-of{world}.jsonl"

    @classmethod
    def create_or_resume(
        cls, path: Path | str, manifest: dict[str, Any], *, rank: int = 0, world: int = 1,
        wait_for_manifest_s: float = 600.0,
    ) -> RunStore:
        """Open a run folder for writing: create it, or resume it when its settings are the same.

        A folder holding a manifest whose config hash differs raises ``ConfigMismatchError`` naming the
        differing settings (mixing two experiments in one folder would silently corrupt the results). A
        non-empty folder without a manifest is refused too, and so is a samples file another process is
        writing (``RunError``).

        The whole decision (read the manifest, write it, lock the samples file, drop a torn tail, record a
        resume) runs under an exclusive lock on ``RUN/.lock``, so processes starting at the same instant see
        one another: one creates the run and the others either resume it (same settings, after the writer
        is gone) or are refused; nothing is written by a refused process. In a sharded job only rank 0
        creates the manifest; other ranks wait up to ``wait_for_manifest_s`` for it.
        """
        path = Path(path)
        manifest = dict(manifest)
        manifest.setdefault("config_hash", manifest_hash(manifest))
        if manifest["config_hash"] != manifest_hash(manifest):
            raise RunError("manifest['config_hash'] does not match its config; build it with make_manifest")
        if path.exists() and not path.is_dir():
            raise RunError(f"{path} exists and is not a folder")
        deadline = time.monotonic() + wait_for_manifest_s
        while True:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RunError(f"cannot create the run folder {path}: {e.strerror or e}") from e
            with _folder_lock(path):
                if (path / MANIFEST).exists() or rank == 0 or world == 1:
                    return cls._create_or_resume_locked(path, manifest, rank, world)
            if time.monotonic() > deadline:  # rank 0 of this job never created the run
                raise RunError(f"{path}: rank {rank} waited {wait_for_manifest_s:g} s for rank 0 to write "
                               f"{MANIFEST}")
            time.sleep(0.2)

    @classmethod
    def _create_or_resume_locked(cls, path: Path, manifest: dict[str, Any], rank: int, world: int) -> RunStore:
        mpath = path / MANIFEST
        if mpath.exists():
            old = read_manifest(path)
            if manifest_hash(old) != manifest["config_hash"]:
                diffs = diff_configs(manifest_config(old), manifest_config(manifest))
                shown = "\n  ".join(diffs[:20]) + ("\n  ..." if len(diffs) > 20 else "")
                raise ConfigMismatchError(
                    f"{path} holds a run with different settings (config hash {manifest_hash(old)[:12]} "
                    f"there, {manifest['config_hash'][:12]} now); differing settings (existing -> new):\n  "
                    f"{shown}\nUse a new --output folder, or rerun with the original settings to resume."
                )
            _check_fingerprints(path, old, manifest)
            store = cls(path, old, rank, world)
            store.resumed = True
            store._open()  # refused here, before anything is written, while another process writes the file
            if rank == 0:  # one writer of the manifest; the resume is recorded with its circumstances
                entry = manifest.get("provenance") or collect_provenance()
                old.setdefault("resumes", []).append(
                    {k: entry.get(k) for k in ("start_time", "command", "versions", "git", "hardware")}
                )
                _check_drift(old, entry)
                try:
                    _write_json_atomic(mpath, old)
                except BaseException:
                    store.close()
                    raise
            return store
        if any(sample_files(path)):
            raise RunError(f"{path} holds samples but no {MANIFEST}; refusing to mix runs (use a new --output)")
        visible = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
        if visible:  # a user's folder: the run's summaries would overwrite its files
            raise RunError(f"{path} holds files ({', '.join(visible[:5])}) but no {MANIFEST}: not a run; refusing "
                           "to write over them (use a new or empty --output)")
        manifest.setdefault("provenance", collect_provenance())
        _write_json_atomic(mpath, manifest)
        store = cls(path, manifest, rank, world)
        store._open()
        return store

    def _open(self) -> None:
        """Open and lock this process's samples file, then drop a torn tail (only the lock holder may)."""
        try:
            fh = open_append(self.samples_path)
        except UnsafeWriteError as e:
            raise RunError(str(e)) from e
        except OSError as e:
            raise RunError(f"cannot write {self.samples_path}: {e.strerror or e}") from e
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                fh.close()
                raise RunError(f"{self.samples_path} is being written by another process") from e
        self._fh = fh
        scan = _scan(self.samples_path)
        if scan.torn:
            # Drop the crash debris before appending, or the next line would glue onto it.
            os.ftruncate(fh.fileno(), scan.good_end)
            os.fsync(fh.fileno())
            self.torn_lines_dropped = scan.torn
            log.warning("%s: dropped %d torn line(s) left by an interrupted write", self.samples_path, scan.torn)
        for rec in self._all_records():
            self._note(rec)

    def _all_records(self) -> list[dict[str, Any]]:
        return _read_all(self.path)[0]

    def _note(self, rec: dict[str, Any]) -> None:
        key = rec["key"]
        if _is_ok(rec):
            self._failed.discard(key)
        elif key not in self._done:
            self._failed.add(key)
        self._done.add(key)

    # -- use ----------------------------------------------------------------------------------------

    def done_keys(self, retry_failed: bool = False) -> set[str]:
        """Keys already recorded in any file of the run (with ``retry_failed``, only successful ones)."""
        return self._done - self._failed if retry_failed else set(self._done)

    def append(self, record: dict[str, Any]) -> None:
        """Write one sample durably: one line, flushed and fsynced before returning."""
        if self._fh is None:
            raise RunError(f"{self.samples_path}: store is closed")
        line = encode_record(record)
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._note(record)

    def records(self) -> list[dict[str, Any]]:
        """All samples of the run so far (every file), one per key, in the stable order."""
        return dedupe(self._all_records())

    def close(self) -> None:
        """Release the file (and its lock)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _folder_lock(path: Path) -> Iterator[None]:
    """Hold the run folder's exclusive lock (``RUN/.lock``): one process at a time decides create vs resume."""
    try:
        check_target(path / LOCK)
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except UnsafeWriteError as e:
        raise RunError(str(e)) from e
    except OSError as e:
        raise RunError(f"cannot write in the run folder {path}: {e.strerror or e}") from e
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_fingerprints(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse a resume whose weight files differ from the run's (same path, other bytes); name the files.

    A manifest written before fingerprints existed cannot be checked: the resume goes on with a warning.
    """
    was, now = old.get("weights"), new.get("weights")
    if not now:
        return
    if not was:
        log.warning("%s: the run's manifest has no weight fingerprints (an older run); cannot check that the "
                    "weights are unchanged", path)
        return
    problems = [line for role in sorted(set(was) | set(now))
                for line in changed_files(was.get(role) or {}, now.get(role) or {})]
    if problems:
        shown = "\n  ".join(problems[:20])
        raise WeightsChangedError(
            f"{path} was run with other weights than the ones now at the same path:\n  {shown}\n"
            "Resuming would mix two weight sets in one run. Use a new --output folder, or restore the files."
        )


def _check_drift(old: dict[str, Any], now: dict[str, Any]) -> None:
    """Warn when a resume runs under different code or libraries than the start (allowed, but recorded)."""
    first = old.get("provenance") or {}
    was, is_ = (first.get("git") or {}).get("revision"), (now.get("git") or {}).get("revision")
    if was and is_ and was != is_:
        log.warning("resuming a run started at git %s with git %s", was[:12], is_[:12])
    vw, vn = first.get("versions") or {}, now.get("versions") or {}
    changed = [f"{k} {vw.get(k)} -> {vn.get(k)}" for k in sorted(set(vw) | set(vn)) if vw.get(k) != vn.get(k)]
    if changed:
        log.warning("resuming with different package versions: %s", ", ".join(changed))


# ---------------------------------------------------------------------------------------------- run level


def iter_records(path: Path | str) -> Iterator[dict[str, Any]]:
    """Raw lines of every samples file of a run, in precedence order (duplicates included)."""
    yield from _read_all(Path(path))[0]


def merge_shards(path: Path | str) -> Path:
    """Fold every shard file into ``samples.jsonl`` (atomic replace), then remove the shards.

    Exact: every valid line of every file contributes, one record per key (``dedupe`` rules), written in
    the stable order. A crash at any point leaves a folder that loads to the same records. Refuses (RunError)
    while any rank still has its shard open: close every ``RunStore`` first.
    """
    path = Path(path)
    shards = [f for f in sample_files(path) if f.name != SAMPLES]
    with contextlib.ExitStack() as held:
        for shard in shards:  # a rank still writing holds its file's lock: merging now would lose its tail
            fh = held.enter_context(open(shard, "rb"))
            if fcntl is not None:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    raise RunError(f"{shard} is still being written; merge after every rank has finished") from e
        return _merge_locked(path, shards)


def _merge_locked(path: Path, shards: list[Path]) -> Path:
    records = dedupe(_read_all(path)[0])
    target = path / SAMPLES
    try:
        write_atomic(target, b"".join(encode_record(rec) for rec in records))
    except UnsafeWriteError as e:
        raise RunError(str(e)) from e
    for shard in shards:
        shard.unlink()
    fsync_dir(path)
    return target


def load_run(path: Path | str) -> Run:
    """Read a run folder (merged or still sharded) into a ``Run``; RunError when it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder")
    manifest = read_manifest(path)
    raw, torn, bad = _read_all(path)
    if bad:
        log.warning("%s: skipped %d unreadable line(s)", path, bad)
    return Run(manifest=manifest, records=dedupe(raw), path=path, torn_lines=torn, bad_lines=bad)


__all__ = [
    "ConfigMismatchError",
    "WeightsChangedError",
    "Run",
    "RunError",
    "RunStore",
    "config_hash",
    "dedupe",
    "encode_record",
    "iter_records",
    "load_run",
    "merge_shards",
    "order_key",
    "read_manifest",
    "sample_files",
    "scan_files",
    "writer_active",
]
