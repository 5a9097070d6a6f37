"""How each memory method looks in every figure of the project: one colour, one marker, one line style.

The table is keyed by method (the preset's ``method`` field), so ``tiny-ahn-gdn`` and ``ahn-gdn-3b`` look alike and
a method never changes colour with the order runs are given in. Colours are from the colour-blind-safe
palette of seaborn ("colorblind"); markers and dashes differ too, so methods stay apart in greyscale and where
their lines coincide. Full attention, the reference, is black. Methods outside the table (a custom method
name) get grey shades and spare markers in a fixed order of their names.

Legends list methods in :data:`ORDER` (the paper's row order), not in the order of the runs.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, replace
from typing import Any


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


STYLES: dict[str, MethodStyle] = {
    "full": MethodStyle("#000000", "s", "-", ""),
    "swa": MethodStyle("#DE8F05", "v", (0, (5, 2)), "//"),
    "ct-max": MethodStyle("#D55E00", "^", (0, (1, 1.5)), "\\\\"),
    "ct-avg": MethodStyle("#CA9161", "D", (0, (5, 2, 1, 2)), "xx"),
    "ahn-mamba2": MethodStyle("#CC78BC", "P", (0, (3, 1, 1, 1, 1, 1)), ".."),
    "ahn-dn": MethodStyle("#029E73", "X", (0, (8, 2)), "--"),
    "ahn-gdn": MethodStyle("#0173B2", "o", "-", ""),
}
ORDER = list(STYLES)
_SPARE_COLORS = ("#555555", "#949494", "#2F4F4F", "#8C564B", "#7F7F00")
_SPARE_MARKERS = ("h", "*", "p", "8", "<", ">", "d")
_SPARE_DASHES = ("-", (0, (4, 1, 1, 1)), (0, (2, 2)), (0, (6, 1, 2, 1)))
_VARIANT_DASHES = ((0, (2, 1)), (0, (6, 2, 2, 2)), (0, (1, 3)))


def method_of(manifest: dict[str, Any], label: str) -> str:
    """The method a run used: the preset's ``method`` (``ahn`` with its cell), else read off the label."""
    config = manifest.get("config", manifest) if isinstance(manifest, dict) else {}
    preset = config.get("preset") if isinstance(config, dict) else None
    name = preset.get("method") if isinstance(preset, dict) else None
    if name == "ahn":
        cell = (config.get("method") or {}).get("cell") if isinstance(config.get("method"), dict) else None
        name = f"ahn-{cell}" if cell else name
    if name in STYLES:
        return name
    for key in sorted(STYLES, key=len, reverse=True):  # "tiny-ahn-gdn", "qwen2.5-3b-ct-max", "swa"
        if re.search(rf"(^|[-_:/]){re.escape(key)}($|[-_:/(])", label):
            return key
    if re.search(r"(^|[-_/])qwen2\.5-\d+b$|(^|[-_:/])full$", label):
        return "full"
    return name or label


def style_for(method: str, variant: int = 0) -> MethodStyle:
    """The style of a method; ``variant`` > 0 for a further run of the same method in one figure."""
    base = STYLES.get(method)
    if base is None:
        h = zlib.crc32(method.encode("utf-8"))
        base = MethodStyle(_SPARE_COLORS[h % len(_SPARE_COLORS)], _SPARE_MARKERS[h % len(_SPARE_MARKERS)],
                           _SPARE_DASHES[h % len(_SPARE_DASHES)])
    if variant:
        base = replace(base, hollow=True, linestyle=_VARIANT_DASHES[(variant - 1) % len(_VARIANT_DASHES)])
    return base


def sort_key(method: str, label: str) -> tuple[int, str]:
    """Methods in the paper's row order, unknown ones after, by label."""
    return (ORDER.index(method) if method in ORDER else len(ORDER), label)
