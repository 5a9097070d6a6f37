"""Provenance for a run's manifest: what was run, with which code, on which machine.

A manifest has two halves. ``config`` is what determines the per-sample results (presets, model, method,
settings, tasks, dataset revisions); its hash decides whether a folder may be resumed. ``provenance`` is where
and how it ran (package versions, git revision, hardware, command line, start time); it is recorded, not
hashed, so resuming after a crash on the same settings with a patched checkout still works (the resume is
logged in ``resumes`` with its own provenance). ``rescores`` lists each `harness rescore` of the run's stored
predictions (:func:`rescore_entry`: when, by which command and harness version, how many scores per task).

Nothing here imports torch: a manifest can be written and read on any machine. When the caller already has
torch loaded, the GPU description is read from it; otherwise ``nvidia-smi`` is asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from baselines import fast_paths

SCHEMA_VERSION = 1
PROJECT_DIST = "ahn-harness"
# Distributions whose versions change results or speed; absent ones are recorded as None.
TRACKED_PACKAGES = (
    PROJECT_DIST,
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "huggingface-hub",
    "numpy",
    "flash-linear-attention",
    "fla-core",
    "flash-attn",
    "jieba",
    "rouge",
)
# Manifest keys that describe the circumstances, not the settings; never part of the config hash.
VOLATILE_KEYS = frozenset({"provenance", "config_hash", "resumes", "rescores", "schema_version", "label"})


def _jsonable(obj: Any) -> Any:
    """Fallback for json.dumps so a config holding Paths, tuples-of-Paths or numpy scalars still hashes."""
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        return item()
    return repr(obj)


def canonical_json(obj: Any) -> str:
    """One spelling per value (sorted keys, no spaces), so equal configs hash equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def config_hash(config: Any) -> str:
    """SHA-256 of the canonical JSON of the settings that determine the results."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def manifest_config(manifest: dict[str, Any]) -> Any:
    """The hashed half of a manifest: ``config`` when present, else every non-volatile key."""
    if "config" in manifest:
        return manifest["config"]
    return {k: v for k, v in manifest.items() if k not in VOLATILE_KEYS}


def manifest_hash(manifest: dict[str, Any]) -> str:
    """The config hash of a manifest, recomputed (a stored ``config_hash`` is never trusted blindly)."""
    return config_hash(manifest_config(manifest))


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key in obj:
            out.update(_flatten(obj[key], f"{prefix}.{key}" if prefix else str(key)))
        if not obj and prefix:
            out[prefix] = {}
        return out
    return {prefix or "<root>": obj}


def diff_configs(old: Any, new: Any) -> list[str]:
    """Readable differences between two configs as ``dotted.path: old -> new`` lines."""
    a, b = _flatten(json.loads(canonical_json(old))), _flatten(json.loads(canonical_json(new)))
    lines = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if va != vb:
            lines.append(f"{key}: {json.dumps(va, ensure_ascii=False)} -> {json.dumps(vb, ensure_ascii=False)}")
    return lines


def package_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions read from package metadata (no imports, so it is fast and torch-free)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info(repo_dir: Path | None = None) -> dict[str, Any]:
    """Where the running code comes from (`harness.version.code_revision`): its own checkout's revision and
    dirty flag, or, installed as a package, the commit or version its metadata records (never the git
    revision of a repository the package happens to be installed inside). With `repo_dir`: that checkout's."""
    from harness.version import checkout_info, code_revision

    if repo_dir is not None:
        return checkout_info(Path(repo_dir)) or {"revision": None, "dirty": None, "branch": None}
    return code_revision()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> dict[str, Any]:
    torch = sys.modules.get("torch")  # only if the caller already paid for importing it
    if torch is not None:
        try:
            if torch.cuda.is_available():
                n = torch.cuda.device_count()
                names = [torch.cuda.get_device_name(i) for i in range(n)]
                mem = [torch.cuda.get_device_properties(i).total_memory for i in range(n)]
                return {"gpu_count": n, "gpu_names": names, "gpu_memory_bytes": mem,
                        "cuda": getattr(torch.version, "cuda", None)}
            return {"gpu_count": 0, "gpu_names": [], "gpu_memory_bytes": [], "cuda": None}
        except Exception:  # a broken CUDA install must not stop a run from recording itself
            pass
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
    if not out:
        return {"gpu_count": 0, "gpu_names": [], "gpu_memory_bytes": [], "cuda": None}
    names, mem = [], []
    for line in out.splitlines():
        name, _, mib = line.rpartition(",")
        names.append(name.strip())
        mem.append(int(float(mib)) * 2**20 if mib.strip().replace(".", "", 1).isdigit() else None)
    return {"gpu_count": len(names), "gpu_names": names, "gpu_memory_bytes": mem, "cuda": None}


def hardware_info() -> dict[str, Any]:
    """CPU and GPU description, enough to tell whether two timings are comparable."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_name": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "ram_bytes": ram,
        **_gpus(),
    }


def now_iso() -> str:
    """UTC timestamp with seconds, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def collect_provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """Everything about the circumstances of a run: versions, git, hardware, command line, start time."""
    args = sys.argv if argv is None else argv
    return {
        "start_time": now_iso(),
        "command": shlex.join([str(a) for a in args]),
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "versions": package_versions(),
        "git": git_info(),
        "hardware": hardware_info(),
        "threads": _threads(),
        "env": run_environment(),
        "fast_paths": fast_paths.current().as_dict(),
    }


def rescore_entry(changed: dict[str, int], argv: list[str] | None = None) -> dict[str, Any]:
    """One entry of a manifest's ``rescores``: the time, the command, the harness that rescored (``harness``: its
    version and code revision, `harness.version.code_revision`) and per task how many stored scores changed."""
    args = sys.argv if argv is None else argv
    return {"time": now_iso(), "command": shlex.join([str(a) for a in args]), "harness": git_info(),
            "changed": dict(changed)}


def _threads() -> dict[str, Any] | None:
    from harness.threads import current  # torch-free unless torch is already loaded

    return current()


RECORDED_ENV = ("CUDA_VISIBLE_DEVICES", "WORLD_SIZE", "HF_HUB_OFFLINE", "PYTORCH_CUDA_ALLOC_CONF", "OMP_NUM_THREADS")
SWITCH_PREFIX = "AHN_HARNESS_"  # the project's settings (plugins, data cache, the fast-path switches)


def run_environment() -> dict[str, str]:
    """The environment variables that shape a run: devices, offline mode, the allocator and the project's
    ``AHN_HARNESS_*`` settings. The fast-path switches are recorded beside, as the one value the run read
    (`fast_paths`, every switch with its default filled in), so two runs whose bf16 numbers differ can be told
    apart by the paths they took."""
    switches = set(fast_paths.VARIABLES.values())
    return {k: v for k, v in sorted(os.environ.items())
            if k in RECORDED_ENV or (k.startswith(SWITCH_PREFIX) and k not in switches)}


def make_manifest(
    config: dict[str, Any],
    *,
    label: str | None = None,
    datasets: dict[str, Any] | None = None,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """A complete manifest for ``RunStore.create_or_resume``.

    ``config`` holds the settings that determine the results (presets, model, method and its settings,
    tasks, truncation, generation). ``datasets`` (name -> revision/hash) is folded into the config so a
    changed dataset revision refuses to resume. ``label`` is the method name plots and tables show.
    """
    cfg = dict(config)
    if datasets is not None:
        cfg["datasets"] = datasets
    manifest: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    if label is not None:
        manifest["label"] = label
    manifest["config"] = cfg
    manifest["config_hash"] = config_hash(cfg)
    manifest["provenance"] = collect_provenance(argv)
    return manifest


def run_label(manifest: dict[str, Any], fallback: str = "run") -> str:
    """The name a person knows the run by: explicit label, else preset, else method name, else fallback."""
    if manifest.get("label"):
        return str(manifest["label"])
    cfg = manifest.get("config", manifest)
    if not isinstance(cfg, dict):
        return fallback
    for key in ("preset", "name"):
        if isinstance(cfg.get(key), str) and cfg[key]:
            return cfg[key]
    presets = cfg.get("presets")
    if isinstance(presets, list | tuple) and presets:
        return "+".join(str(p) for p in presets)
    method = cfg.get("method")
    if isinstance(method, str) and method:
        return method
    if isinstance(method, dict):
        for key in ("label", "name", "kind"):
            if method.get(key):
                return str(method[key])
    return fallback
