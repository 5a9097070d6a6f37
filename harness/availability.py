"""Is everything a run needs here (or fetchable) before any weights load? One answer listing every missing piece.

A run needs its base models, AHN checkpoints and benchmark files. Found one at a time, a user learns of the
next only after fixing the last (and, for the data, after the weights loaded); so `harness run` asks here first
and raises one `SettingsError` that names every missing piece and the command that fetches them all.

A piece is missing when it is neither local (a folder, the Hugging Face cache at the pinned revision, the
harness's data cache or ``--data-dir``) nor fetchable now (offline, the Hub unreachable, or ``--data-dir``
given: a local copy is then the only place looked at). Benchmark files are looked up through the adapters
themselves (one record each), so exactly what the run reads is checked, and fetched here when online.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.preflight import SettingsError
from harness.presets import Preset
from tasks import hub

#: task families whose files come from the Hub (the synthetic tasks are generated)
HUB_FAMILIES = ("lveval", "infinitebench", "longbench", "ahn-paper")


def _looks_local(name: str) -> bool:
    return Path(name).exists() or name.startswith(("/", "./", "../", "~")) or "/" not in name


def missing_model(name: str, what: str) -> str | None:
    """Why the model or AHN checkpoint `name` (folder or Hub id) cannot be had now, or None."""
    if Path(name).expanduser().exists():
        return None  # a folder: its contents are checked by harness.preflight
    if _looks_local(name):
        return f"{what} folder {name}: no such folder; pass a folder that exists, or a Hub id (owner/name)"
    from huggingface_hub import snapshot_download

    from harness.hashing import LOADER_FILE_PATTERNS

    revision = hub.model_revision(name)
    try:
        snapshot_download(name, revision=revision, local_files_only=True, allow_patterns=list(LOADER_FILE_PATTERNS))
        return None
    except Exception:  # not in the cache: fetchable only when online
        pass
    if hub.is_offline():
        return f"{what} {name} (revision {revision}): not in the Hugging Face cache, and HF_HUB_OFFLINE is set"
    if not hub._hub_reachable():
        return f"{what} {name} (revision {revision}): not in the Hugging Face cache, and the Hub is unreachable"
    return None  # the run downloads it


def missing_data(tasks: str, data_dir: str | None) -> list[str]:
    """Why the benchmark files of `tasks` cannot be had now (one entry per family), or nothing."""
    from tasks.registry import load_samples, parse_task_spec

    problems: list[str] = []
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        problems.append(f"--data-dir {data_dir}: no such folder")
    for sel in parse_task_spec(tasks):
        if sel.family not in HUB_FAMILIES:
            continue
        try:
            load_samples(sel, data_dir=data_dir, limit=1)
        except hub.DataUnavailableError as exc:
            text = str(exc)
            if text not in problems:
                problems.append(text)
    return problems


def missing_pieces(presets: Sequence[Preset], tasks: str, data_dir: str | None) -> list[str]:
    """Every piece of the run that is neither here nor fetchable now, in the order the run would need them."""
    out: list[str] = []
    from harness.local_models import FETCH_HINT, built_copy

    for preset in presets:
        # a preset whose offline fallback (its local quantized copy) is built has its base model here
        base = None if preset.local_copy and built_copy(preset.local_copy) is not None else preset.model
        if base is not None and preset.local_copy:
            why = missing_model(base, f"{preset.name}: base model")
            if why is not None:  # neither the Hub release nor the copy: the command that builds the copy
                why = f"{why}; or build its local copy: `{FETCH_HINT.format(name=preset.local_copy)}`"
                out += [why] if why not in out else []
            base = None
        for name, what in ((base, f"{preset.name}: base model"),
                           (preset.ahn_checkpoint, f"{preset.name}: AHN checkpoint")):
            if name:
                why = missing_model(name, what)
                if why is not None and why not in out:
                    out.append(why)
    return out + missing_data(tasks, data_dir)


def download_hint(presets: Sequence[Preset], tasks: str) -> str:
    """The `harness download` command that fetches what these presets and tasks read."""
    hub_presets = [p.name for p in presets if not _looks_local(p.model)
                   or (p.ahn_checkpoint and not _looks_local(p.ahn_checkpoint))]
    parts = ["python -m harness download"]
    if hub_presets:
        parts.append(f"--model {','.join(hub_presets)}")
    hub_tasks = [t.strip() for t in tasks.split(",") if t.strip().split(":")[0] in HUB_FAMILIES]
    if hub_tasks:
        parts.append(f"--tasks {','.join(hub_tasks)}")
    return " ".join(parts)


def check_available(presets: Sequence[Preset], tasks: str, data_dir: str | None) -> None:
    """Raise one `SettingsError` listing every missing piece (nothing has been loaded yet)."""
    problems = missing_pieces(presets, tasks, data_dir)
    if not problems:
        return
    items = "\n".join("  - " + p.replace("\n", "\n    ") for p in problems)
    raise SettingsError(
        f"{len(problems)} piece(s) of this run are missing (nothing was loaded):\n{items}\n"
        f"On a machine with network access, `{download_hint(presets, tasks)}` fetches them "
        "(`--dry-run` lists them); a local copy works too: --base-path / --ahn-checkpoint FOLDER, --data-dir FOLDER.")


__all__ = ["HUB_FAMILIES", "check_available", "download_hint", "missing_data", "missing_model", "missing_pieces"]
