"""The fast paths' switches as one value: read from the environment once, validated, kept until reset."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from baselines import fast_paths
from baselines.fast_paths import VARIABLES, FastPaths

REPO = Path(__file__).resolve().parents[2]


def test_unset_switches_are_the_defaults_and_every_field_has_its_variable():
    assert FastPaths.from_environ({}) == FastPaths()
    assert set(VARIABLES) == {f for f in FastPaths.__dataclass_fields__}
    assert len(set(VARIABLES.values())) == len(VARIABLES) == 13
    doc = FastPaths().as_dict()
    assert doc["AHN_HARNESS_WINDOW_ATTENTION"] == "split" and doc["AHN_HARNESS_STEP_GRAPH"] is True


@pytest.mark.parametrize(("variable", "value", "valid"), [
    ("AHN_HARNESS_WINDOW_ATTENTION", "cudnn", "split, split-flash, split-reference, flex"),
    ("AHN_HARNESS_FUSED_LAYERS", "yes", "0, 1, force"),
    ("AHN_HARNESS_FUSED_ROTARY", "on", "0, 1"),
    ("AHN_HARNESS_CHUNK_GRAPHS", "2", "0, 1"),
    ("AHN_HARNESS_DECODE_ATTENTION", "flash", "auto, products, flex"),
    ("AHN_HARNESS_DECODE_SPLITS", "0", "an integer >= 1"),
    ("AHN_HARNESS_FLEX_DECODE", "BLOCK_M=64", "BLOCK_N, num_stages, num_warps, SPLIT_KV"),
    ("AHN_HARNESS_STEP_COMPILE", "yes", "0 (uncompiled), 1 (inductor), auto"),
])
def test_a_bad_value_is_named_with_its_variable_and_the_valid_ones(variable, value, valid):
    with pytest.raises(ValueError, match=re.escape(f"{variable}={value!r}; valid: ") + ".*" + re.escape(valid)):
        FastPaths.from_environ({variable: value})


def test_values_are_read_as_the_paths_read_them():
    paths = FastPaths.from_environ({"AHN_HARNESS_STEP_GRAPH": "0", "AHN_HARNESS_DECODE_GRAPHS": "no",
                                    "AHN_HARNESS_CAUSAL_CUDNN": "0", "AHN_HARNESS_DECODE_SPLITS": "64",
                                    "AHN_HARNESS_FLEX_DECODE": "BLOCK_N=128,num_warps=8",
                                    "AHN_HARNESS_STEP_COMPILE": "aot_eager", "UNRELATED": "x"})
    assert not paths.step_graph and not paths.causal_cudnn
    assert paths.decode_graphs  # an on/off switch is off only at "0", as it always was
    assert paths.decode_splits == "64" and paths.step_compile == "aot_eager"
    assert fast_paths.flex_decode_options(paths.flex_decode) == {"BLOCK_N": 128, "num_warps": 8}
    assert fast_paths.flex_decode_options("default") is None


def test_read_once_then_kept_until_reset():
    variable = "AHN_HARNESS_WINDOW_ATTENTION"
    before = os.environ.get(variable)
    try:
        os.environ[variable] = "flex"
        fast_paths.reset()
        first = fast_paths.current()
        os.environ[variable] = "split-reference"  # not seen: the value was read already
        assert fast_paths.current() is first and first.window_attention == "flex"
        fast_paths.reset()
        assert fast_paths.current().window_attention == "split-reference"
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before
        fast_paths.reset()


def test_the_environment_is_read_for_the_switches_in_one_place():
    """No product module but `baselines/fast_paths.py` reads a switch from the environment."""
    names = "|".join(re.escape(v) for v in VARIABLES.values())
    readers = []
    for package in ("harness", "baselines", "tasks", "ahn"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "baselines/fast_paths.py":
                continue
            text = path.read_text()
            if re.search(rf"(environ|getenv)[^\n]*({names})", text):
                readers.append(rel)
            # a module holding a switch's name reads no environment at all
            if re.search(r"VARIABLES\[", text) and re.search(r"\b(os\.environ|getenv)\b", text):
                readers.append(rel)
    assert readers == []
