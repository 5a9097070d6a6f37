"""Every memory method by name: where its class and its cost model live, as lazy ``"module:Class"`` targets.

Nothing here imports torch or any method's module, so listing, ``--help`` and error messages always name every
method (AHN included) instantly. A target is imported only when that method is built (`make_method`) or
costed (`cost_model`). Adding a method is one line (`docs/ADDING_A_METHOD.md`)::

    register_method("my-swa", "mypkg.my_swa:MySWA", costs="mypkg.my_swa:MySWACosts")

A method outside the repository registers itself by that same line in its own module; `harness` imports the
modules named in ``AHN_HARNESS_PLUGINS`` (comma-separated) before any command.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

STYLE_KEYS = frozenset({"color", "marker", "linestyle", "hatch"})


@dataclass(frozen=True)
class MethodSpec:
    """One registered method: its name, its class and cost model (lazy targets) and what it fixes."""

    name: str
    target: str  # "module:Class" of the MemoryMethod subclass
    costs: str  # "module:Class" of its torch-free CostModel
    fixed: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # e.g. CT's pool, AHN's cell
    paper_name: str | None = None  # row label of the paper's tables
    aliases: tuple[str, ...] = ()  # other spellings accepted wherever a method is named
    needs_checkpoint: bool = False  # trained parameters must be loaded before it means anything (AHN)
    # how figures draw it (`harness/style.py`): color, marker, linestyle (matplotlib's), hatch; None: a spare style
    style: MappingProxyType | None = None
    # Hub id of its released checkpoint for a Qwen2.5-Instruct size ("{size}": 3B, 7B, 14B), for the paper presets
    checkpoint_hub: str | None = None

    def method_class(self) -> type:
        return _resolve(self.target, self.name)

    def cost_class(self) -> type:
        return _resolve(self.costs, self.name)

    @property
    def bounded(self) -> bool:
        """False for a method that keeps every token (full attention: no sinks, no window)."""
        return bool(self.cost_class().bounded)

    def settings(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """`kwargs` plus what the registration fixes; a clash with a fixed value is an error naming both."""
        for key, value in self.fixed.items():
            if key in kwargs and kwargs[key] != value:
                raise ValueError(f"method {self.name!r} fixes {key}={value!r}; got {key}={kwargs[key]!r}")
        return {**kwargs, **self.fixed}


_REGISTRY: dict[str, MethodSpec] = {}
_ALIASES: dict[str, str] = {}


def _resolve(target: str, name: str) -> type:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"method {name!r}: cannot load {target!r} ({type(exc).__name__}: {exc})") from exc


def register_method(name: str, target: str, *, costs: str, paper_name: str | None = None,
                    aliases: tuple[str, ...] = (), needs_checkpoint: bool = False,
                    style: Mapping[str, Any] | None = None, checkpoint_hub: str | None = None,
                    **fixed: Any) -> MethodSpec:
    """Register a method under `name`: `target` and `costs` are ``"module:Class"`` strings, imported only when
    used; `fixed` are constructor settings the name implies (``pool="max"``, ``cell="gdn"``).

    Everything else the project knows about a method is declared here too: `paper_name` (its row label in
    `harness table --paper`), `needs_checkpoint` (trained weights, loaded and saved by the method's own
    `load_checkpoint` / `save_checkpoint`), `style` (``{"color", "marker", "linestyle", "hatch"}`` of its
    figures) and `checkpoint_hub` (the paper presets' released weights). Whether it is bounded is its cost
    model's `bounded`."""
    for label, value in (("target", target), ("costs", costs)):
        if not isinstance(value, str) or value.count(":") != 1 or not all(value.split(":")):
            raise ValueError(f"method {name!r}: {label} must be a 'module:Class' string, got {value!r}")
    if not name or name != name.strip().lower():
        raise ValueError(f"method names are lower-case without spaces, got {name!r}")
    if style is not None and not set(style) <= STYLE_KEYS:
        raise ValueError(f"method {name!r}: unknown style keys {sorted(set(style) - STYLE_KEYS)}; "
                         f"valid: {', '.join(sorted(STYLE_KEYS))}")
    spec = MethodSpec(name, target, costs, MappingProxyType(dict(fixed)), paper_name, tuple(aliases),
                      needs_checkpoint, None if style is None else MappingProxyType(dict(style)), checkpoint_hub)
    _REGISTRY[name] = spec
    for alias in (*aliases, *([paper_name] if paper_name else [])):
        _ALIASES[alias.strip().lower()] = name
    return spec


def method_names() -> list[str]:
    """Every registered method, in registration order (the built-in ones first)."""
    return list(_REGISTRY)


def specs() -> list[MethodSpec]:
    """Every registered method, in registration order."""
    return list(_REGISTRY.values())


def paper_methods() -> tuple[str, ...]:
    """The methods that are rows of the paper's tables, in registration order."""
    return tuple(s.name for s in specs() if s.paper_name)


def canonical_method(name: str) -> str:
    """The registered name for any spelling (paper row labels included); a clear error lists the valid ones."""
    if not isinstance(name, str):
        raise ValueError(f"method must be a string, got {name!r}; valid methods: {', '.join(method_names())}")
    key = name.strip().lower()
    if key in _REGISTRY:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(method_names())}")


def get_spec(name: str) -> MethodSpec:
    return _REGISTRY[canonical_method(name)]


def make_method(name: str, **kwargs: Any) -> Any:
    """Build a registered method (`full`, `swa`, `ct-max`, `ct-avg`, `ahn`, `ahn-gdn`, …) with `kwargs`."""
    spec = get_spec(name)
    cls, settings = spec.method_class(), spec.settings(kwargs)
    takes = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in takes.values()):
        unknown = [k for k in settings if k not in takes]
        if unknown:
            raise ValueError(f"method {spec.name!r} takes no {', '.join(unknown)}; its settings: "
                             f"{', '.join(k for k in takes if k not in spec.fixed) or 'none'}")
    method = cls(**settings)
    if "name" not in vars(method):  # a subclass registered under its own name reports that name
        method.name = spec.name
    return method


def cost_model(name: str, **settings: Any) -> Any:
    """The torch-free cost model of a method with these settings (its `describe()`; unknown ones ignored)."""
    spec = get_spec(name)
    model = spec.cost_class()(**spec.settings({k: v for k, v in settings.items() if k != "method"}))
    model.method = spec.name
    return model


def cost_model_of(method: Any) -> Any:
    """The cost model of a built method, from what it describes itself as (name and settings)."""
    described = method.describe()
    return cost_model(described["method"], **described)


# The built-in methods, in the row order of the paper's tables; `ahn` is AHN with the cell as an argument (default
# gdn). Styles: the colour-blind-safe palette of seaborn ("colorblind"), markers and dashes differing too, so
# the methods stay apart in greyscale; full attention, the reference, is black.
_CT = "baselines.methods:CompressivePooling"
_AHN, _AHN_COSTS = "ahn.method:AHNMethod", "ahn.costs:AHNCosts"
_AHN_HUB = "ByteDance-Seed/AHN-{cell}-for-Qwen-2.5-Instruct-{{size}}"
register_method("full", "baselines.methods:FullAttention", costs="baselines.method_costs:FullCosts",
                paper_name="Full Attn", aliases=("full-attn", "full_attention", "full-attention"),
                style={"color": "#000000", "marker": "s", "linestyle": "-", "hatch": ""})
register_method("swa", "baselines.methods:SinksWindow", costs="baselines.method_costs:WindowCosts",
                paper_name="Sinks+SWA", aliases=("sinks-swa", "sink+swa", "window"),
                style={"color": "#DE8F05", "marker": "v", "linestyle": (0, (5, 2)), "hatch": "//"})
register_method("ct-max", _CT, costs="baselines.method_costs:CompressiveCosts", pool="max", paper_name="CT-Max",
                style={"color": "#D55E00", "marker": "^", "linestyle": (0, (1, 1.5)), "hatch": "\\\\"})
register_method("ct-avg", _CT, costs="baselines.method_costs:CompressiveCosts", pool="avg",
                paper_name="CT-Average", aliases=("ct-mean",),
                style={"color": "#CA9161", "marker": "D", "linestyle": (0, (5, 2, 1, 2)), "hatch": "xx"})
register_method("ahn-mamba2", _AHN, costs=_AHN_COSTS, cell="mamba2", paper_name="AHN-Mamba2", aliases=("mamba2",),
                needs_checkpoint=True, checkpoint_hub=_AHN_HUB.format(cell="Mamba2"),
                style={"color": "#CC78BC", "marker": "P", "linestyle": (0, (3, 1, 1, 1, 1, 1)), "hatch": ".."})
register_method("ahn-dn", _AHN, costs=_AHN_COSTS, cell="dn", paper_name="AHN-DN", aliases=("dn",),
                needs_checkpoint=True, checkpoint_hub=_AHN_HUB.format(cell="DN"),
                style={"color": "#029E73", "marker": "X", "linestyle": (0, (8, 2)), "hatch": "--"})
register_method("ahn-gdn", _AHN, costs=_AHN_COSTS, cell="gdn", paper_name="AHN-GDN", aliases=("gdn",),
                needs_checkpoint=True, checkpoint_hub=_AHN_HUB.format(cell="GDN"),
                style={"color": "#0173B2", "marker": "o", "linestyle": "-", "hatch": ""})
register_method("ahn", _AHN, costs=_AHN_COSTS, needs_checkpoint=True)

# Score-based eviction (`baselines/scattered.py`): per head, any `sinks + window` tokens a score keeps.
_EVICT_COSTS = "baselines.eviction_costs"
register_method("snapkv", "baselines.snapkv:SnapKV", costs=f"{_EVICT_COSTS}:SnapKVCosts")
register_method("pyramidkv", "baselines.pyramidkv:PyramidKV", costs=f"{_EVICT_COSTS}:PyramidKVCosts")
register_method("tova", "baselines.tova:TOVA", costs=f"{_EVICT_COSTS}:TOVACosts")
register_method("h2o", "baselines.h2o:H2O", costs=f"{_EVICT_COSTS}:H2OCosts")
register_method("knorm", "baselines.knorm:KeyNorm", costs=f"{_EVICT_COSTS}:EvictionCosts", aliases=("key-norm",))
register_method("random", "baselines.random_eviction:RandomEviction", costs=f"{_EVICT_COSTS}:EvictionCosts")
