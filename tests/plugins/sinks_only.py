"""A memory method added the way docs/ADDING_A_METHOD.md says, whose settings are its own: attention sinks and
the current token only (StreamingLLM's sinks without a window; every other token is dropped).

It takes no window (it keeps one token beside the sinks) and its default sinks (4) are not the paper's, so
whatever `info`, `run`, the costs and the manifest report must come from the method, not from a preset or the
command line. Registered when this module is imported; tests/conftest.py imports it.
"""

from __future__ import annotations

from baselines.interface import MemoryMethod
from baselines.registry import register_method


class SinksOnly(MemoryMethod):
    """The first `sinks` tokens and the token itself: a window of one."""

    def __init__(self, sinks: int = 4) -> None:
        super().__init__(sinks=sinks, window=1)


# A window of one is sinks + window with nothing remembered: the base cost model prices it exactly.
register_method("sinks-only", f"{__name__}:SinksOnly", costs="baselines.method_costs:WindowCosts")
