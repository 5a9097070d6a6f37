"""The fast paths' switches, as one value: the ``AHN_HARNESS_*`` variables read from the environment once.

`FastPaths.from_environ` is the one reader of these variables; it validates every one and names the bad
variable with its valid values. `current()` is the process's value, built on first use and kept (the attention
reads it per layer and chunk as an attribute, not as thirteen environment look-ups); `reset()` drops it, so
the next `current()` reads the environment again (a command starts with one, `harness.cli`; tests that change
a variable call it, `tests/conftest.py`). A run records `current().as_dict()` in its manifest.

The switches (defaults in `FastPaths`); what each selects is described beside the code it switches:

* ``AHN_HARNESS_WINDOW_ATTENTION`` (split, split-flash, split-reference, flex): a full window's attention in
  three dense pieces, or FlexAttention (`baselines/split_attention.py`).
* ``AHN_HARNESS_FUSED_LAYERS`` (0, 1, force) and ``AHN_HARNESS_FUSED_ROTARY`` (0, 1): the prefill's
  elementwise work compiled, with the rotary inside (`baselines/fused_layers.py`).
* ``AHN_HARNESS_CAUSAL_CUDNN`` and ``AHN_HARNESS_FLEX`` (0 off; FLEX=force also on the CPU): cuDNN for plain
  causal chunks, FlexAttention for masked ones (`baselines/attention.py`, `baselines/flex.py`).
* ``AHN_HARNESS_CHUNK_GRAPHS`` (0, 1) and ``AHN_HARNESS_DECODE_GRAPHS`` (0 off): AHN's memory updates as CUDA
  graphs (`ahn/chunk_graphs.py`, `ahn/decode_graphs.py`).
* ``AHN_HARNESS_STEP_GRAPH`` (0 off), ``AHN_HARNESS_STEP_COMPILE`` (auto, 0, 1, a torch.compile backend),
  ``AHN_HARNESS_DECODE_SPLITS`` (auto, an integer >= 1), ``AHN_HARNESS_DECODE_ATTENTION`` (auto, products, flex,
  flex-rows, flex-heads) and ``AHN_HARNESS_FLEX_DECODE`` (unset: the tuned options; default; key=int,...): the
  static decode step (`baselines/static_decode.py`).
* ``AHN_HARNESS_AHN_BACKEND`` (auto, or a backend of `ahn.ops.dispatch`): the AHN cells' kernels, checked where
  the method is built (`ahn/method.py`).

The on/off switches keep their long-standing reading: "0" is off and any other value is on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

#: The variable of each field.
VARIABLES: dict[str, str] = {
    "window_attention": "AHN_HARNESS_WINDOW_ATTENTION",
    "fused_layers": "AHN_HARNESS_FUSED_LAYERS",
    "fused_rotary": "AHN_HARNESS_FUSED_ROTARY",
    "causal_cudnn": "AHN_HARNESS_CAUSAL_CUDNN",
    "flex": "AHN_HARNESS_FLEX",
    "chunk_graphs": "AHN_HARNESS_CHUNK_GRAPHS",
    "decode_graphs": "AHN_HARNESS_DECODE_GRAPHS",
    "step_graph": "AHN_HARNESS_STEP_GRAPH",
    "step_compile": "AHN_HARNESS_STEP_COMPILE",
    "decode_splits": "AHN_HARNESS_DECODE_SPLITS",
    "decode_attention": "AHN_HARNESS_DECODE_ATTENTION",
    "flex_decode": "AHN_HARNESS_FLEX_DECODE",
    "ahn_backend": "AHN_HARNESS_AHN_BACKEND",
}
WINDOW_ATTENTION = ("split", "split-flash", "split-reference", "flex")
FUSED_LAYERS = ("0", "1", "force")
FUSED_ROTARY = ("0", "1")
CHUNK_GRAPHS = ("0", "1")
DECODE_ATTENTION = ("auto", "products", "flex", "flex-rows", "flex-heads")
FLEX_KEYS = ("BLOCK_N", "num_stages", "num_warps", "SPLIT_KV")


@dataclass(frozen=True)
class FastPaths:
    """Which fast paths a process takes; every field is one ``AHN_HARNESS_*`` variable (`VARIABLES`)."""

    window_attention: str = "split"
    fused_layers: str = "1"
    fused_rotary: str = "1"
    causal_cudnn: bool = True
    flex: str = "1"  # "0" off, "force" on any device, anything else on CUDA
    chunk_graphs: str = "0"
    decode_graphs: bool = True
    step_graph: bool = True
    step_compile: str = "auto"
    decode_splits: str = "auto"  # "auto" or a positive integer, as written
    decode_attention: str = "auto"
    flex_decode: str | None = None  # None: the tuned options (`static_decode.FLEX_DECODE_OPTIONS`)
    ahn_backend: str = "auto"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> FastPaths:
        """The switches of `environ` (default: the process's environment), validated; unset ones are defaults."""
        env = os.environ if environ is None else environ
        given = {name: env[var] for name, var in VARIABLES.items() if var in env}
        for name, choices in (("window_attention", WINDOW_ATTENTION), ("fused_layers", FUSED_LAYERS),
                              ("fused_rotary", FUSED_ROTARY), ("chunk_graphs", CHUNK_GRAPHS),
                              ("decode_attention", DECODE_ATTENTION)):
            if name in given and given[name] not in choices:
                raise ValueError(f"{VARIABLES[name]}={given[name]!r}; valid: {', '.join(choices)}")
        for name in ("causal_cudnn", "decode_graphs", "step_graph"):
            if name in given:
                given[name] = given[name] != "0"  # type: ignore[assignment]
        splits = given.get("decode_splits")
        if splits is not None and splits != "auto" and (not splits.isdigit() or int(splits) < 1):
            raise ValueError(f"{VARIABLES['decode_splits']}={splits!r}; valid: an integer >= 1 (pieces of the slot "
                             "reduction) or auto")
        if "flex_decode" in given:
            flex_decode_options(given["flex_decode"])  # raises naming the variable
        if given.get("step_compile", "auto") not in ("auto", "0", "1"):
            import torch._dynamo

            backends = torch._dynamo.list_backends(exclude_tags=())
            if given["step_compile"] not in backends:
                raise ValueError(f"{VARIABLES['step_compile']}={given['step_compile']!r}; valid: 0 (uncompiled), "
                                 f"1 (inductor), auto (inductor on CUDA), or a torch.compile backend "
                                 f"({', '.join(backends)})")
        return cls(**given)

    def as_dict(self) -> dict[str, object]:
        """Every switch by its variable, for the manifest."""
        values = asdict(self)
        return {VARIABLES[f.name]: values[f.name] for f in fields(self)}


def flex_decode_options(setting: str) -> dict[str, int] | None:
    """An AHN_HARNESS_FLEX_DECODE value as kernel options: None for "default" (torch's own choice), else the
    `key=int` pairs over FLEX_KEYS; a ValueError naming the variable and the valid keys otherwise."""
    if setting == "default":
        return None
    options = {}
    for item in setting.split(","):
        key, _, value = item.partition("=")
        if key not in FLEX_KEYS or not value.isdigit() or int(value) < 1:
            raise ValueError(f"{VARIABLES['flex_decode']}={setting!r}; valid: default, or key=int pairs joined by "
                             f"commas with keys {', '.join(FLEX_KEYS)} (e.g. BLOCK_N=64,num_stages=3,num_warps=4)")
        options[key] = int(value)
    return options


_CURRENT: FastPaths | None = None


def current() -> FastPaths:
    """The process's switches: read from the environment on first use, then kept until `reset()`."""
    global _CURRENT
    if _CURRENT is None:
        _CURRENT = FastPaths.from_environ()
    return _CURRENT


def reset() -> None:
    """Forget the kept switches: the next `current()` reads the environment again."""
    global _CURRENT
    _CURRENT = None
