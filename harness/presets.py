"""Named presets: the paper's seven rows for each Qwen2.5 base, and the project's tiny world.

A preset names the base model, the memory method and the method's own settings it sets (paper: 128 sinks +
32,640 window; 128 + 8,064 for LongBench); a setting it leaves out (None) is the method's default. The built
method is the one source of its settings: costs, warnings and the manifest read them from it. Any Hub id or
local folder works too, with `--method` and friends.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from baselines.costs import TABLE9_ORDER
from baselines.prefill_chunk import DEFAULT_CHUNK
from baselines.registry import get_spec

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_DIR = REPO_ROOT / "leaderboards" / "tiny"

PAPER_SINKS, PAPER_WINDOW, LONGBENCH_WINDOW = 128, 32640, 8064
DEFAULT_METHOD = "full"  # a model named without --method runs as it is
TINY_SINKS, TINY_WINDOW = 32, 480
# The real small base: 128 + 3,968 = 4,096 kept tokens leave most of a 16k-32k prompt beyond the window, as the
# paper's 128 + 32,640 do at 128k (docs/REAL_MODEL.md).
CODER_SINKS, CODER_WINDOW = 128, 3968
CODER_BASE, CODER_COPY = "Qwen2.5-Coder-0.5B-Instruct", "qwen2.5-coder-0.5b"
#: AHN presets on the Coder-0.5B base, one line each: method -> checkpoint folder (released format) that this
#: project's recipe trained (docs/TRAINING_REAL.md). Each becomes `<method>-coder-0.5b`.
CODER_AHN_DIR = REPO_ROOT / "leaderboards" / "coder-0.5b"
CODER_AHN_CHECKPOINTS: dict[str, str] = {
    "ahn-gdn": str(CODER_AHN_DIR / "gdn"),
    "ahn-dn": str(CODER_AHN_DIR / "dn"),
    "ahn-mamba2": str(CODER_AHN_DIR / "mamba2"),
}

#: The paper's rows in the order of its tables: a preset per row and base (labels from the method registry).
PAPER_ROWS: tuple[str, ...] = TABLE9_ORDER


@dataclass(frozen=True)
class Preset:
    name: str
    model: str  # Hub id or local folder of the base model
    method: str  # a name for baselines.make_method
    sinks: int | None = None  # the method's settings this preset sets; None: the method's default
    window: int | None = None
    ahn_checkpoint: str | None = None  # Hub id or local folder of a trained method's weights (its own format)
    local_copy: str | None = None  # `fetch-model` name of the copy used when the Hub id cannot be had
    base: str | None = None  # key of the embedded config for costs without weights (e.g. "Qwen2.5-3B-Instruct")
    paper_row: str | None = None  # the method's row name in the paper's tables
    chunk_size: int = DEFAULT_CHUNK
    description: str = ""
    #: The protocol `--protocol auto` runs: "paper" (the AHN paper's LV-Eval/InfiniteBench protocol, where prompts
    #: reach past the window) for the paper's presets, "official" (each benchmark's own) otherwise (tasks.protocols).
    protocol: str = "official"

    def with_overrides(self, **kwargs) -> Preset:
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})

    def method_settings(self) -> dict[str, int]:
        """The method's settings this preset sets (the rest are the method's own defaults); none for a method
        that keeps every token."""
        if not get_spec(self.method).bounded:
            return {}
        return {k: v for k, v in (("sinks", self.sinks), ("window", self.window)) if v is not None}

    def to_dict(self) -> dict:
        """For the manifest: the method's settings are not here but in the built method's `describe()`; a
        preset without a local copy has no `local_copy` key, as before the field existed."""
        out = {k: v for k, v in asdict(self).items() if k not in ("sinks", "window")}
        if out["local_copy"] is None:
            del out["local_copy"]
        return out


def _paper_presets() -> dict[str, Preset]:
    presets = {}
    for size in ("3B", "7B", "14B"):
        base = f"Qwen2.5-{size}-Instruct"
        tag = size.lower()
        for method in PAPER_ROWS:
            spec = get_spec(method)
            row = spec.paper_name
            if spec.needs_checkpoint:
                name = f"{method}-{tag}"
                ckpt = spec.checkpoint_hub.format(size=size)
            else:
                name = f"qwen2.5-{tag}" if not spec.bounded else f"qwen2.5-{tag}-{method}"
                ckpt = None
            full = not spec.bounded
            presets[name] = Preset(
                name=name, model=f"Qwen/{base}", method=method,
                sinks=None if full else PAPER_SINKS, window=None if full else PAPER_WINDOW,
                ahn_checkpoint=ckpt, base=base, paper_row=row, protocol="paper",
                description=f"{row} on {base}" + ("" if full else " (paper setting: 128 sinks + 32,640 window)"),
            )
    return presets


def _tiny_presets() -> dict[str, Preset]:
    presets = {}
    for method in PAPER_ROWS:
        spec = get_spec(method)
        row, full = spec.paper_name, not spec.bounded
        presets[f"tiny-{method}"] = Preset(
            name=f"tiny-{method}", model=str(TINY_DIR / "base"), method=method,
            sinks=None if full else TINY_SINKS, window=None if full else TINY_WINDOW,
            ahn_checkpoint=str(TINY_DIR / method) if spec.needs_checkpoint else None,
            paper_row=row, chunk_size=512,
            description=f"{row} on the project's tiny byte-level base "
                        + ("(the whole prompt attended)" if full else f"({TINY_SINKS} sinks + {TINY_WINDOW} window)"),
        )
    return presets


def _coder_presets() -> dict[str, Preset]:
    """Full, sinks + window, CT-max, CT-avg (and any AHN checkpoint listed above) on Qwen2.5-Coder-0.5B-Instruct:
    the Hub release where it can be had, else the local quantized copy (`python -m harness fetch-model`)."""
    presets = {}
    for method in PAPER_ROWS:
        spec = get_spec(method)
        if spec.needs_checkpoint and method not in CODER_AHN_CHECKPOINTS:
            continue
        row, full = spec.paper_name, not spec.bounded
        name = ("qwen2.5-coder-0.5b" if full else f"qwen2.5-coder-0.5b-{method}") if not spec.needs_checkpoint \
            else f"{method}-coder-0.5b"
        presets[name] = Preset(
            name=name, model=f"Qwen/{CODER_BASE}", method=method,
            sinks=None if full else CODER_SINKS, window=None if full else CODER_WINDOW,
            ahn_checkpoint=CODER_AHN_CHECKPOINTS.get(method), local_copy=CODER_COPY, base=CODER_BASE,
            paper_row=row,
            description=f"{row} on {CODER_BASE}" + ("" if full else f" ({CODER_SINKS} sinks + {CODER_WINDOW:,} "
                                                                    "window)"),
        )
    return presets


PRESETS: dict[str, Preset] = {**_paper_presets(), **_tiny_presets(), **_coder_presets()}
TINY_DEFAULT = [f"tiny-{m}" for m in PAPER_ROWS]


def get_preset(name: str) -> Preset:
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, PRESETS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown preset {name!r}.{hint} Valid presets: {', '.join(PRESETS)}")


def resolve_model(model: str, method: str | None = None, sinks: int | None = None, window: int | None = None,
                  ahn_checkpoint: str | None = None, chunk_size: int | None = None) -> Preset:
    """A preset name, or any Hub id / local folder with an explicit method (default: full attention); sinks
    and window not given are the method's own defaults."""
    if model in PRESETS:
        preset = PRESETS[model]
        if method is not None and method != preset.method:
            raise ValueError(f"preset {model!r} fixes method {preset.method!r}; pass the base model id "
                             f"({preset.model}) with --method {method} instead")
        return preset.with_overrides(sinks=sinks, window=window, ahn_checkpoint=ahn_checkpoint,
                                     chunk_size=chunk_size)
    looks_like_path = Path(model).exists() or "/" in model
    if not looks_like_path:
        get_preset(model)  # raises with the valid names
    method = method or DEFAULT_METHOD
    return Preset(
        name=f"{Path(model).name}:{method}", model=model, method=method, sinks=sinks, window=window,
        ahn_checkpoint=ahn_checkpoint, chunk_size=chunk_size or DEFAULT_CHUNK,
    )

