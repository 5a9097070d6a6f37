"""Which harness is this: its version and the revision of its code, for `--version` and every run's manifest.

Run from its own git checkout (the folder holding `harness/` is a work tree's top level), the revision is that
checkout's `git rev-parse HEAD` and dirty flag. Installed as a package, the code's folder is `site-packages`,
which may well sit inside someone else's repository (a virtual environment in the user's project), so git is
never asked there; the revision comes from the installed distribution's metadata instead (PEP 610
`direct_url.json`): the VCS commit when it was installed from git, the source folder's checkout when it was an
editable install, else just the version. The version itself is written once, in `pyproject.toml`.
"""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

DIST = "ahn-harness"
CODE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding harness/, tasks/, baselines/, ahn/


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def checkout_info(root: Path) -> dict[str, Any] | None:
    """Revision, dirty flag and branch of the git work tree whose top level is `root`; None when `root` is not
    one (a folder inside another repository's tree does not count)."""
    top = _git(["rev-parse", "--show-toplevel"], root)
    if top is None or Path(top).resolve() != root.resolve():
        return None
    revision = _git(["rev-parse", "HEAD"], root)
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], root)
    return {"revision": revision, "dirty": bool(status) if status is not None else None, "branch": branch}


def _distribution() -> metadata.Distribution | None:
    try:
        return metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return None


def version() -> str:
    """The version in this checkout's pyproject.toml, else the installed distribution's."""
    pyproject = CODE_ROOT / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == DIST:
            return str(project["version"])
    dist = _distribution()
    return dist.version if dist is not None else "unknown"


def direct_url(dist: metadata.Distribution) -> dict[str, Any] | None:
    """PEP 610 `direct_url.json` of an installed distribution (absent when it came from an index)."""
    try:
        text = dist.read_text("direct_url.json")
    except Exception:
        return None
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def code_revision() -> dict[str, Any]:
    """Where the running code comes from: ``{"source", "revision", "dirty", "branch", "version", "url"}``.

    ``source`` is ``checkout`` (its own git work tree), ``vcs`` (installed from git: the commit it was built
    from), ``editable`` (an editable install whose source folder is a checkout) or ``package`` (an installed
    copy with no commit: the version identifies it)."""
    ver = version()
    own = checkout_info(CODE_ROOT)
    if own is not None:
        return {"source": "checkout", **own, "version": ver, "url": None}
    dist = _distribution()
    info = direct_url(dist) if dist is not None else None
    url = info.get("url") if info else None
    if info and isinstance(info.get("vcs_info"), dict):
        vcs = info["vcs_info"]
        return {"source": "vcs", "revision": vcs.get("commit_id"), "dirty": False,
                "branch": vcs.get("requested_revision"), "version": ver, "url": url}
    if info and (info.get("dir_info") or {}).get("editable") and str(url).startswith("file://"):
        src = checkout_info(Path(str(url).removeprefix("file://")))
        if src is not None:
            return {"source": "editable", **src, "version": ver, "url": url}
    return {"source": "package", "revision": None, "dirty": None, "branch": None, "version": ver, "url": url}


def version_line() -> str:
    """`ahn-harness 0.1.0 (git 1a2b3c4d5e6f, dirty)`: the text of `--version`."""
    rev = code_revision()
    if rev["revision"]:
        where = f"git {rev['revision'][:12]}" + (", dirty" if rev.get("dirty") else "")
        if rev["source"] == "vcs":
            where = f"installed from {rev['url']} at {rev['revision'][:12]}"
    else:
        where = "installed package" + (f" from {rev['url']}" if rev.get("url") else "")
    return f"{DIST} {rev['version']} ({where})"


__all__ = ["checkout_info", "code_revision", "direct_url", "version", "version_line"]
