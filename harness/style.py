"""How each memory method looks in every figure of the project: one colour, one marker, one line style.

A method declares its style where it is registered (`baselines/registry.py`, ``style=``), so ``tiny-ahn-gdn`` and
``ahn-gdn-3b`` look alike and a method never changes colour with the order runs are given in. Methods without
one (a custom method) get grey shades and spare markers in a fixed order of their names.

Legends list the styled methods in their registration order (the paper's row order), not in the order of the
runs.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, replace
from typing import Any

from baselines.registry import method_names, specs


@dataclass(frozen=True)
class MethodStyle:
    color: str
    marker: str
    linestyle: Any  # a matplotlib line style: "-", "--", or (offset, (on, off, …))
    hatch: str = ""  # for bars
    hollow: bool = False  # a second run of the same method: open markers

    def line_kwargs(self) -> dict[str, Any]:
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle,
                "markerfacecolor": "white" if self.hollow else self.color, "markeredgecolor": self.color}


def styles() -> dict[str, MethodStyle]:
    """The declared style of every registered method that has one, in registration order."""
    return {s.name: MethodStyle(**s.style) for s in specs() if s.style is not None}


STYLES: dict[str, MethodStyle] = styles()  # the built-in methods' (plugins registered later: `styles()`)
_SPARE_COLORS = ("#555555", "#949494", "#2F4F4F", "#8C564B", "#7F7F00")
_SPARE_MARKERS = ("h", "*", "p", "8", "<", ">", "d")
_SPARE_DASHES = ("-", (0, (4, 1, 1, 1)), (0, (2, 2)), (0, (6, 1, 2, 1)))
_VARIANT_DASHES = ((0, (2, 1)), (0, (6, 2, 2, 2)), (0, (1, 3)))


def method_of(manifest: dict[str, Any], label: str) -> str:
    """The method a run used: the built method's name (``ahn`` reports its cell: ``ahn-gdn``), else the preset's
    ``method``, else the method of a preset named by the label, else read off the label."""
    config = manifest.get("config", manifest) if isinstance(manifest, dict) else {}
    config = config if isinstance(config, dict) else {}
    described, preset = config.get("method"), config.get("preset")
    built = described.get("method") if isinstance(described, dict) else None
    name = preset.get("method") if isinstance(preset, dict) else None
    known = {*method_names(), *styles()}
    for candidate in (built, name):
        if candidate in known:
            return candidate
    from harness.presets import PRESETS

    if label in PRESETS:
        return PRESETS[label].method
    for key in sorted(known, key=len, reverse=True):  # "tiny-ahn-gdn", "qwen2.5-3b-ct-max", "swa"
        if re.search(rf"(^|[-_:/]){re.escape(key)}($|[-_:/(])", label):
            return key
    return name or label


def style_for(method: str, variant: int = 0) -> MethodStyle:
    """The style of a method; ``variant`` > 0 for a further run of the same method in one figure."""
    base = styles().get(method)
    if base is None:
        h = zlib.crc32(method.encode("utf-8"))
        base = MethodStyle(_SPARE_COLORS[h % len(_SPARE_COLORS)], _SPARE_MARKERS[h % len(_SPARE_MARKERS)],
                           _SPARE_DASHES[h % len(_SPARE_DASHES)])
    if variant:
        base = replace(base, hollow=True, linestyle=_VARIANT_DASHES[(variant - 1) % len(_VARIANT_DASHES)])
    return base


def sort_key(method: str, label: str) -> tuple[int, str]:
    """Styled methods in their registration order (the paper's rows), the others after, by label."""
    order = list(styles())
    return (order.index(method) if method in order else len(order), label)
