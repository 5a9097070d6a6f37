"""Writing only where asked: never through a symbolic link, never over something that is not a regular file.

Every file the harness writes (a run's samples, manifest, lock and summaries, reports, ``score --output``,
``export-lm-eval``) goes through here:

* ``check_target(path)`` refuses a target that is a symbolic link (a link's target would be overwritten: as
  root, a link to a system file would wipe it) or that exists and is not a regular file (a folder, a FIFO, a
  device);
* ``write_atomic(path, data)`` writes a new file beside the target (created exclusively, without following
  links), fsyncs it and renames it over the target: a crash leaves the old file or the new one, never half;
* ``open_append(path)`` opens a file for appending without following a link, and checks it is a regular file;
* ``safe_name(name)`` turns a label into one path component (no separators, no ``.``/``..``, no NUL).

The errors are ``UnsafeWriteError`` (a ``ValueError``: the command line prints one ``error:`` line).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class UnsafeWriteError(ValueError):
    """A write the harness refuses: through a link, over a non-regular file, or to an unsafe name."""


def check_target(path: Path | str) -> Path:
    """``path`` when it is absent or a regular file (not a link); ``UnsafeWriteError`` otherwise."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeWriteError(f"{path} is a symbolic link; refusing to write through it (remove the link or "
                               "write elsewhere)")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeWriteError(f"{path} exists and is not a regular file; refusing to write over it")
    return path


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries durable (a rename or a new file in it); a filesystem that cannot is passed."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path | str, data: bytes | str) -> Path:
    """Replace ``path`` with ``data`` (str as UTF-8) atomically; refuses links and non-regular targets."""
    path = check_target(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if os.path.lexists(tmp):  # a crashed write of this process id: only a regular file is ours to remove
        check_target(tmp)
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        check_target(path)  # a link planted while the data was written is refused too
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def open_append(path: Path | str):  # noqa: ANN201 (a binary file object)
    """``open(path, "ab")`` that neither follows a link nor accepts a non-regular file."""
    path = check_target(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
    except OSError as e:
        if _NOFOLLOW and os.path.islink(path):
            raise UnsafeWriteError(f"{path} is a symbolic link; refusing to write through it") from e
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeWriteError(f"{path} exists and is not a regular file; refusing to write over it")
    return os.fdopen(fd, "ab")


_UNSAFE = re.compile(r"[\x00-\x1f/\\:]+")


def safe_name(name: str, what: str = "name") -> str:
    """``name`` as a single path component: separators and control characters become ``_``; refuses a name
    that is empty or only dots (``.``, ``..``) after that."""
    cleaned = _UNSAFE.sub("_", str(name)).strip()
    if not cleaned or set(cleaned) <= {"."}:
        raise UnsafeWriteError(f"{what} {name!r} cannot name a file or folder (empty, '.' or '..')")
    return cleaned


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether two paths name one file (through links, ``..`` or hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


__all__ = ["UnsafeWriteError", "check_target", "open_append", "safe_name", "same_file", "write_atomic"]
