"""Checks that the process runs the project's own packages and a supported transformers, with clear errors.

Two ways a working install goes wrong without saying why:

* **Shadowed packages.** The project's top-level packages have generic names (``tasks``, ``baselines``,
  ``ahn``; OpenAI's ``baselines`` is also on PyPI). ``python -m harness`` puts the working directory first on
  ``sys.path``, so a user's own ``tasks/`` folder there replaces ours and every command fails deep inside with
  ``No module named 'tasks.registry'``. :func:`check_own_packages` (run when ``harness`` is imported) finds
  where each sibling package would be imported from, without importing it, and names the foreign one. The
  ``ahn-harness`` console script does not put the working directory on ``sys.path`` and is not affected.
* **transformers outside the supported range.** The memory methods attach to transformers' attention
  interface, whose details changed in 5.x; an older transformers loads the tiny checkpoints (they are written
  to load on 4.57 too) but cannot run the methods. :func:`check_transformers` refuses it by version, before
  any weights are loaded.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
from pathlib import Path

# The supported transformers range; pyproject.toml states the same (tests/harness/test_compat.py checks it).
TRANSFORMERS_SPEC = ">=5.17,<6"

# Each sibling package of `harness` and a file only the project's copy has.
OWN_PACKAGES = {"tasks": "registry.py", "baselines": "engine.py", "ahn": "checkpoint.py"}
ROOT = Path(__file__).resolve().parents[1]


class ShadowedPackageError(ImportError):
    """A top-level package of the project resolves to another module of the same name."""


class UnsupportedTransformersError(RuntimeError):
    """The installed transformers is outside the supported range."""


def _origin(name: str) -> Path | None:
    """The ``__init__.py`` (or module file) that ``import name`` uses; None when it cannot be found."""
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None) if module is not None else None
    if spec is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
    if spec is None or spec.origin in (None, "namespace"):
        return None
    return Path(spec.origin).resolve()


def foreign_packages(root: Path = ROOT) -> dict[str, Path | None]:
    """The sibling packages that do not resolve to the project's own copy in ``root``, with what they resolve to."""
    bad: dict[str, Path | None] = {}
    for name, marker in OWN_PACKAGES.items():
        origin = _origin(name)
        ours = origin is not None and origin == (root / name / "__init__.py").resolve()
        if not ours or not (root / name / marker).exists():
            bad[name] = origin
    return bad


def check_own_packages(root: Path = ROOT) -> None:
    """Raise :class:`ShadowedPackageError` naming every sibling package that is not the project's."""
    bad = foreign_packages(root)
    if not bad:
        return
    found = "; ".join(f"'{name}' resolves to {origin or 'nothing'}" for name, origin in bad.items())
    raise ShadowedPackageError(
        f"ahn-harness needs its own packages {', '.join(repr(n) for n in OWN_PACKAGES)} from {root}, but {found}. "
        "A folder or module of that name earlier on sys.path (often the working directory, which `python -m` "
        "puts first) hides the project's. Use the console script `ahn-harness …` (it does not add the working "
        "directory), run from another directory, or rename the local folder."
    )


def transformers_supported(version: str) -> bool:
    """Whether a transformers version string is inside :data:`TRANSFORMERS_SPEC` (pre-releases included)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        return SpecifierSet(TRANSFORMERS_SPEC).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def check_transformers(version: str | None = None) -> str:
    """The installed transformers version; :class:`UnsupportedTransformersError` when outside the range."""
    if version is None:
        try:
            version = metadata.version("transformers")
        except metadata.PackageNotFoundError:
            raise UnsupportedTransformersError(
                f"transformers is not installed; ahn-harness needs transformers{TRANSFORMERS_SPEC}") from None
    if not transformers_supported(version):
        raise UnsupportedTransformersError(
            f"transformers {version} is not supported: ahn-harness needs transformers{TRANSFORMERS_SPEC} "
            f"(pip install 'transformers{TRANSFORMERS_SPEC}'). The memory methods attach to the attention "
            "interface of transformers 5; the tiny checkpoints alone also load with plain transformers 4.57."
        )
    return version
