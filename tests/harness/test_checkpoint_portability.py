"""The tiny base loads the same with plain transformers 4.57 and 5.x (scripts/check_transformers_ends.sh runs
the other versions; here: the files that make it portable, and the check itself on this transformers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "leaderboards" / "tiny" / "base"
needs_base = pytest.mark.skipif(not (BASE / "config.json").exists(), reason="the tiny world is not committed")


@needs_base
def test_committed_base_carries_theta_for_both_config_formats():
    config = json.loads((BASE / "config.json").read_text())
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 1e6
    from tasks.byte_tokenizer import PORTABLE_TOKENIZER_CLASS

    assert json.loads((BASE / "tokenizer_config.json").read_text())["tokenizer_class"] == PORTABLE_TOKENIZER_CLASS
    assert (BASE / "chat_template.jinja").exists()


def test_saving_writes_the_portable_files(tmp_path):
    from transformers import AutoTokenizer

    from ahn.train.tiny_base import write_portable_config
    from tasks.byte_tokenizer import PORTABLE_TOKENIZER_CLASS, save_byte_tokenizer

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2",
                                                      "rope_parameters": {"rope_theta": 5e5, "rope_type": "default"}}))
    write_portable_config(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["rope_theta"] == 5e5
    save_byte_tokenizer(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == PORTABLE_TOKENIZER_CLASS
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok.encode("ab<|im_end|>é", add_special_tokens=False) == [97, 98, 258, 195, 169]


@needs_base
def test_plain_transformers_gives_the_harness_answers(tmp_path, capsys):
    """Plain AutoModelForCausalLM.generate on the harness's prompts (first 6 of the default job) gives the
    committed tiny-full predictions; the same check runs under transformers 4.57 and 5.17 in CI."""
    import importlib.util

    script = ROOT / "scripts" / "check_transformers_compat.py"
    prompts = tmp_path / "prompts.json"
    # the harness's side (its prompts and committed answers) in this process; the check in a fresh interpreter
    # that imports transformers without the harness, as CI runs it under other transformers versions
    spec = importlib.util.spec_from_file_location("check_transformers_compat", script)
    compat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compat)
    assert compat.main(["--write", str(prompts)]) == 0
    env_run = {"cwd": ROOT, "capture_output": True, "text": True, "timeout": 600}
    checked = subprocess.run([sys.executable, str(script), "--check", str(prompts), "--limit", "6"], **env_run)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "6/6 greedy answers equal the harness's, RoPE theta 1e+06" in checked.stdout
    items = json.loads(prompts.read_text())["items"]
    items[0]["prediction"] = items[0]["prediction"] + "x"  # negative control: a wrong answer is reported
    prompts.write_text(json.dumps({"base": str(BASE), "items": items[:1]}))
    assert compat.main(["--check", str(prompts)]) == 1  # the checker's verdict: this process is enough
    assert items[0]["key"] in capsys.readouterr().out
