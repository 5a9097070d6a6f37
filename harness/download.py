"""`python -m harness download`: fetch what runs read (base models, AHN checkpoints, benchmark files) at the
pinned revisions, on a machine with network access (a cluster's login node), for runs that are then offline.

Models and checkpoints go to the Hugging Face cache (`HF_HOME`), where `harness run` looks for them at the same
revision; benchmark files go to the harness's data cache (`$AHN_HARNESS_DATA` or `~/.cache/ahn-harness`), or to
`--data-dir`. `--dry-run` lists every piece with its revision and size (estimated from the parameter count for
weights; asked of the Hub for files when it is reachable) and fetches nothing. Revisions: `tasks/hub.py`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks import hub

BF16_BYTES = 2


@dataclass(frozen=True)
class Piece:
    """One thing to fetch: a model/checkpoint repo (some files) or one benchmark file."""

    kind: str  # "model", "ahn-checkpoint" or "dataset"
    repo: str
    revision: str
    files: tuple[str, ...]
    family: str | None = None  # datasets: the task family whose cache folder it goes to
    size_bytes: int | None = None  # estimated (weights: parameters x 2 bytes, bf16) or asked of the Hub
    size_note: str = ""

    def line(self) -> str:
        size = "size unknown" if self.size_bytes is None else f"{_gb(self.size_bytes)}{self.size_note}"
        what = ", ".join(self.files) if len(self.files) <= 4 else f"{len(self.files)} files"
        return f"{self.kind:<15} {self.repo} @ {self.revision}  ({what}; {size})"


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def data_files(tasks: str) -> dict[str, list[str]]:
    """The Hub files each benchmark family of the task selection `tasks` reads (synthetic tasks need none)."""
    from tasks import ahn_paper, infinitebench, longbench, lveval
    from tasks.registry import parse_task_spec

    out: dict[str, list[str]] = {}

    def add(family: str, names: Sequence[str]) -> None:
        bucket = out.setdefault(family, [])
        bucket.extend(n for n in names if n not in bucket)

    for sel in parse_task_spec(tasks):
        if sel.family == lveval.FAMILY:
            add(lveval.FAMILY, [f"{d}.zip" for d in ([sel.name] if sel.name else lveval.DATASETS)])
        elif sel.family == infinitebench.FAMILY:
            add(infinitebench.FAMILY, [f"{t}.jsonl" for t in ([sel.name] if sel.name else infinitebench.TASKS)])
        elif sel.family == longbench.FAMILY:
            add(longbench.FAMILY, [longbench.HUB_ZIP])
        elif sel.family == ahn_paper.FAMILY:
            for task in (ahn_paper.expand(sel.name) if sel.name else ahn_paper.TASKS):
                family, _, name = task.partition("/")
                if family == lveval.FAMILY:
                    add(lveval.FAMILY, [f"{name}.zip"])
                elif family == longbench.FAMILY:
                    add(longbench.FAMILY, [longbench.HUB_ZIP])
                else:
                    add(infinitebench.FAMILY, [f"{task}.jsonl"])
    return out


def _weights_size(preset, kind: str) -> int | None:
    """Parameters x 2 bytes (bf16) of a paper preset's base model or AHN modules, from the embedded configs."""
    if not preset.base:
        return None
    from baselines.costs import params_extra
    from baselines.model_configs import get_dims

    dims = get_dims(preset.base)
    n = dims.num_parameters() if kind == "model" else params_extra(dims, preset.method)
    return n * BF16_BYTES


def plan(models: Sequence[str], tasks: str | None) -> list[Piece]:
    """Every piece the presets (or Hub ids) `models` and the task selection `tasks` read from the Hub."""
    from harness.hashing import LOADER_FILE_PATTERNS
    from harness.presets import PRESETS, get_preset

    pieces: list[Piece] = []
    seen: set[str] = set()
    for name in models:
        preset = PRESETS.get(name)
        if preset is None and "/" not in name:
            get_preset(name)  # raises with the valid names
        entries = ([(preset.model, "model"), (preset.ahn_checkpoint, "ahn-checkpoint")] if preset is not None
                   else [(name, "model")])
        for repo, kind in entries:
            if not repo or repo in seen:
                continue
            if Path(repo).exists():
                continue  # a local folder (the tiny world): nothing to fetch
            seen.add(repo)
            files = tuple(LOADER_FILE_PATTERNS) if kind == "model" else ("config.json", "model.safetensors")
            size = _weights_size(preset, kind) if preset is not None else None
            pieces.append(Piece(kind, repo, hub.model_revision(repo), files, size_bytes=size,
                                size_note=" est., bf16" if size is not None else ""))
    for family, files in data_files(tasks or "").items() if tasks else ():
        for f in files:
            pieces.append(Piece("dataset", hub.HUB_REPOS[family], hub.DATASET_REVISIONS[family], (f,), family=family))
    return pieces


def hub_sizes(pieces: list[Piece]) -> list[Piece]:
    """The dataset files' sizes asked of the Hub (when reachable and not offline); others unchanged."""
    if hub.is_offline() or not any(p.kind == "dataset" for p in pieces) or not hub._hub_reachable():
        return pieces
    from dataclasses import replace

    from huggingface_hub import HfApi

    api, out = HfApi(), []
    for p in pieces:
        if p.kind == "dataset":
            try:
                info = api.get_paths_info(p.repo, list(p.files), revision=p.revision, repo_type="dataset")
                p = replace(p, size_bytes=sum(getattr(i, "size", 0) or 0 for i in info) or None)
            except Exception:  # sizes are a courtesy: a failed query leaves "size unknown"
                pass
        out.append(p)
    return out


def fetch(pieces: Sequence[Piece], data_dir: str | None, log=print) -> None:
    """Download every piece (models to the Hugging Face cache, benchmark files to the data cache or
    `data_dir`), telling each as it starts; a failure names the piece and stops."""
    from huggingface_hub import hf_hub_download, snapshot_download

    for i, p in enumerate(pieces, 1):
        log(f"[{i}/{len(pieces)}] {p.line()}")
        try:
            if p.kind == "dataset":
                if data_dir is None:
                    hub.fetch(p.family, list(p.files))
                else:
                    for f in p.files:
                        hf_hub_download(p.repo, f, repo_type="dataset", revision=p.revision,
                                        local_dir=str(Path(data_dir) / p.family))
            else:
                snapshot_download(p.repo, revision=p.revision, allow_patterns=list(p.files))
        except Exception as exc:
            raise OSError(f"cannot fetch {p.kind} {p.repo} @ {p.revision} ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness download",
        description="Fetch base models, AHN checkpoints and benchmark files at the pinned revisions (tasks/hub.py) "
                    "on a machine with network access; runs then find them offline.",
        epilog="example: python -m harness download --model ahn-gdn-3b,qwen2.5-3b --tasks ahn-paper --dry-run")
    parser.add_argument("--model", default="", help="comma-separated presets (python -m harness list presets) "
                                                    "or Hub ids")
    parser.add_argument("--tasks", help="task selection whose files to fetch, e.g. lveval, infinitebench, "
                                        "longbench, ahn-paper (synthetic tasks need none)")
    parser.add_argument("--data-dir", help="put the benchmark files here (default: the harness data cache, "
                                           f"${hub.ENV_DATA} or ~/.cache/ahn-harness)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be fetched, fetch nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    if not models and not args.tasks:
        raise ValueError("download needs --model and/or --tasks, e.g. --model ahn-gdn-3b --tasks ahn-paper")
    pieces = plan(models, args.tasks)
    if not pieces:
        print("nothing to fetch: every model named is a local folder and no task reads Hub files")
        return 0
    if args.dry_run:
        pieces = hub_sizes(pieces)
        known = sum(p.size_bytes or 0 for p in pieces)
        print(f"would fetch {len(pieces)} piece(s), {_gb(known)} where the size is known:")
        for p in pieces:
            print("  " + p.line())
        unpinned = sorted({p.repo for p in pieces if p.revision == "main"})
        if unpinned:
            print("not pinned (revision main, no commit known offline): " + ", ".join(unpinned))
        return 0
    if hub.is_offline():
        raise ValueError("download needs the network, but HF_HUB_OFFLINE is set; run it on a connected machine "
                         "(e.g. the login node) with HF_HUB_OFFLINE unset")
    fetch(pieces, args.data_dir, log=lambda m: print(m, file=sys.stderr))
    print(f"fetched {len(pieces)} piece(s); runs now find them offline (HF_HUB_OFFLINE=1)"
          + (f" with --data-dir {args.data_dir}" if args.data_dir else ""))
    return 0


__all__ = ["Piece", "data_files", "fetch", "main", "plan"]
