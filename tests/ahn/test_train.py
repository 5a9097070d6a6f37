"""The AHN trainer on a tiny random base: learning, frozen base, checkpoints, resume, clear failures."""

from __future__ import annotations

import json

import pytest
import torch

from ahn.checkpoint import load_ahn_state_dict
from ahn.train.config import ConfigError, load_config
from ahn.train.data import ListSource
from ahn.train.loop import ResumeError, build_optimizer, check_trainable, freeze_all_but_ahn, train
from ahn.train.loss import distill_loss, loss_positions
from baselines import attach, make_method
from tests.tiny_models import tiny_model

IR = 0.1  # a larger init spread than HF's 0.02 so that sinks + window really differ from full attention


def _source(n: int = 4, length: int = 96, seed: int = 0) -> ListSource:
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, 300, (n, length), generator=g).tolist()
    return ListSource([{"input_ids": r, "labels": r} for r in rows])


def _cfg(tmp_path, *extra: str):
    base = ["base=tiny", f"output_dir={tmp_path / 'out'}", "window.mode=fixed", "window.sinks=2",
            "window.window=14", "steps=6", "grad_accum=1", "micro_batch_size=2", "optim.lr=1e-2",
            "optim.warmup_ratio=0", "save_every=2", "save_dtype=float32", "gradient_checkpointing=false"]
    return load_config(None, base + list(extra))


def _quiet(_msg: str) -> None:
    pass


def _student_logits(model, method, ids, sinks=2, window=14):
    with attach(model, method), method.configured(sinks=sinks, window=window), torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits


def test_micro_ahn_learns_and_only_ahn_moves(tmp_path):
    model = tiny_model(initializer_range=IR)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = _cfg(tmp_path, "steps=8", "data.shuffle=false", "optim.schedule=constant")
    res = train(cfg, model=model, source=_source(2), echo=_quiet)
    kl = [h["kl"] for h in res.history]
    assert res.complete and len(kl) == 8
    assert kl[-1] < 0.8 * kl[0], kl
    after = model.state_dict()
    assert set(after) == set(before)  # AHN detached again, nothing added
    for k in before:
        assert torch.equal(before[k], after[k]), k  # the base is bit-for-bit unchanged
    assert all(p.requires_grad for p in model.parameters())  # flags restored
    moved = [n for n, p in res.method.blocks.named_parameters() if "o_proj" in n and p.abs().sum() > 0]
    assert len(moved) == len(res.method.blocks)  # every layer's output map learnt something
    log = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 9))
    assert {"loss", "kl", "lr", "grad_norm", "tokens_per_s", "windows"} <= set(log[0])
    assert log[0]["windows"] == [[2, 14]]


def test_saved_checkpoint_loads_strictly_and_reproduces_outputs(tmp_path):
    model = tiny_model(initializer_range=IR)
    res = train(_cfg(tmp_path), model=model, source=_source(), echo=_quiet)
    ids = torch.randint(0, 300, (1, 80), generator=torch.Generator().manual_seed(5))
    trained = _student_logits(model, res.method, ids)
    fresh = make_method("ahn", cell="gdn", sinks=2, window=14)
    with attach(model, fresh):
        report = load_ahn_state_dict(tmp_path / "out", model, strict=True)
    assert len(report.loaded) == 16 and not report.missing
    assert torch.equal(_student_logits(model, fresh, ids), trained)
    swa = _student_logits(model, make_method("swa", sinks=2, window=14), ids)
    assert not torch.allclose(trained, swa)  # the memory really changes the output
    cfg_json = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg_json["_ahn_implementation"] == "GatedDeltaNet" and "dy_sliding_window" not in cfg_json
    assert cfg_json.get("_attn_implementation") in (None, "sdpa")


def test_bf16_release_weights_are_close(tmp_path):
    model = tiny_model(initializer_range=IR)
    res = train(_cfg(tmp_path, "save_dtype=bfloat16", "cell=mamba2"), model=model, source=_source(), echo=_quiet)
    ids = torch.randint(0, 300, (1, 80), generator=torch.Generator().manual_seed(6))
    trained = _student_logits(model, res.method, ids)
    fresh = make_method("ahn", cell="mamba2", sinks=2, window=14)
    with attach(model, fresh):
        load_ahn_state_dict(tmp_path / "out", model, strict=True)
    err = (_student_logits(model, fresh, ids) - trained).abs().max()
    effect = (trained - _student_logits(model, make_method("swa", sinks=2, window=14), ids)).abs().max()
    assert err < 0.1 * effect, (err, effect)  # bf16 rounding is small next to what the memory adds


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    random_windows = ["window.mode=random", "window.window_candidates=[8,16,32,64]", "window.sink_candidates=[0,2,4]",
                      "steps=4", "optim.warmup_ratio=0.25"]
    full = train(_cfg(tmp_path / "a", *random_windows), model=tiny_model(initializer_range=IR), source=_source(6),
                 echo=_quiet)
    first = train(_cfg(tmp_path / "b", *random_windows, "max_steps=2"), model=tiny_model(initializer_range=IR),
                  source=_source(6), echo=_quiet)
    assert first.steps_done == 2 and not first.complete
    second = train(_cfg(tmp_path / "b", *random_windows), model=tiny_model(initializer_range=IR), source=_source(6),
                   echo=_quiet)
    assert second.resumed_from is not None and second.resumed_from.name == "step-000002"
    assert second.complete and [h["step"] for h in second.history] == [3, 4]
    assert [h["windows"] for h in full.history[2:]] == [h["windows"] for h in second.history]
    a = dict(full.method.blocks.named_parameters())
    for n, p in second.method.blocks.named_parameters():
        assert torch.equal(p, a[n]), n
    log = (tmp_path / "b" / "out" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in log] == [1, 2, 3, 4]


def test_resume_from_another_config_names_the_key(tmp_path):
    train(_cfg(tmp_path, "max_steps=2"), model=tiny_model(), source=_source(), echo=_quiet)
    with pytest.raises(ResumeError, match=r"optim\.lr: 0\.01 -> 0\.02"):
        train(_cfg(tmp_path, "optim.lr=2e-2"), model=tiny_model(), source=_source(), echo=_quiet)
    # run-control keys do not block a resume
    res = train(_cfg(tmp_path, "log_every=3"), model=tiny_model(), source=_source(), echo=_quiet)
    assert res.resumed_from is not None


def test_unsupported_base_family_fails_clearly(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "gpt2"
    GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100).save_pretrained(str(folder))
    cfg = load_config(None, [f"base={folder}", f"output_dir={tmp_path / 'o'}", "data.source=synthetic"])
    with pytest.raises(ConfigError, match="unsupported base model family 'gpt2'"):
        train(cfg)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100))
    with pytest.raises(ConfigError, match="unsupported model family 'gpt2'"):
        train(_cfg(tmp_path), model=model, source=_source())


def test_fixed_window_too_large_for_the_batch_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="not smaller than the sequence length L=16"):
        train(_cfg(tmp_path), model=tiny_model(), source=_source(length=16), echo=_quiet)
    res = train(_cfg(tmp_path / "s", "window.on_short=skip", "steps=2"), model=tiny_model(),
                source=_source(length=16), echo=_quiet)
    assert [h["skipped"] for h in res.history] == [1, 1] and res.history[0]["loss"] is None


def test_trainable_set_is_checked():
    model = tiny_model()
    method = make_method("ahn", cell="dn", sinks=2, window=8)
    with attach(model, method):
        params = freeze_all_but_ahn(model)
        assert all("ahn" in n for n in params) and len(params) == 8
        opt = build_optimizer(params, _cfg_obj())
        check_trainable(model, params, opt)
        model.lm_head.weight.requires_grad_(True)
        with pytest.raises(RuntimeError, match="trainable set is not the AHN set"):
            check_trainable(model, params, opt)


def _cfg_obj():
    return load_config(None, ["base=x"])


def test_weight_decay_groups_follow_hf_trainer():
    model = tiny_model()
    method = make_method("ahn", cell="mamba2", sinks=2, window=8)
    with attach(model, method):
        params = freeze_all_but_ahn(model)
        opt = build_optimizer(params, _cfg_obj())
    names = {id(p): n for n, p in params.items()}
    decayed = {names[id(p)].split("ahn.fn.")[1] for p in opt.param_groups[0]["params"]}
    exempt = {names[id(p)].split("ahn.fn.")[1] for p in opt.param_groups[1]["params"]}
    assert opt.param_groups[0]["weight_decay"] == 0.1 and opt.param_groups[1]["weight_decay"] == 0.0
    assert {"A_log", "norm.weight", "o_proj.weight", "g_proj.weight", "dt_proj.weight"} <= decayed
    assert exempt == {"dt_bias", "dt_proj.bias", "g_proj.bias"}


def test_loss_positions_official_vs_shifted():
    labels = torch.tensor([[-100, -100, -100, 5, 6, 7, -100, -100]])
    official = loss_positions(labels, w_tot=2, mode="official")
    shifted = loss_positions(labels, w_tot=2, mode="shifted")
    assert official[0].nonzero().flatten().tolist() == [3, 4, 5]
    assert shifted[0].nonzero().flatten().tolist() == [2, 3, 4]
    assert loss_positions(labels, w_tot=4, mode="official")[0].nonzero().flatten().tolist() == [4, 5]


def test_chunked_loss_equals_one_chunk():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 11, bias=False)
    hs = torch.randn(2, 10, 8, requires_grad=True)
    ht = torch.randn(2, 10, 8)
    mask = torch.rand(2, 10) > 0.3
    a, n = distill_loss(hs, ht, head, mask, chunk=3)
    (ga,) = torch.autograd.grad(a, hs)
    b, _ = distill_loss(hs, ht, head, mask, chunk=1000)
    (gb,) = torch.autograd.grad(b, hs)
    ref = torch.nn.functional.kl_div(head(hs[mask]).log_softmax(-1), head(ht[mask]).log_softmax(-1),
                                     log_target=True, reduction="batchmean")
    assert n == int(mask.sum()) and torch.allclose(a, b) and torch.allclose(a, ref) and torch.allclose(ga, gb)
    zero, n0 = distill_loss(hs, ht, head, torch.zeros_like(mask))
    assert n0 == 0 and zero.item() == 0.0


def test_ce_loss_and_gradient_checkpointing_and_accumulation(tmp_path):
    model = tiny_model(initializer_range=IR)
    res = train(_cfg(tmp_path, "loss=ce", "gradient_checkpointing=true", "grad_accum=2", "steps=2"), model=model,
                source=_source(), echo=_quiet)
    assert res.complete and all(h["ce"] > 0 for h in res.history)
    assert not model.model.layers[0].gradient_checkpointing  # restored


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    runs = []
    for gc in ("false", "true"):
        res = train(_cfg(tmp_path / gc, f"gradient_checkpointing={gc}", "steps=2"), model=tiny_model(initializer_range=IR),
                    source=_source(), echo=_quiet)
        runs.append(dict(res.method.blocks.named_parameters()))
    for n, p in runs[0].items():
        assert torch.equal(p, runs[1][n]), n  # recomputing the same forward is the same arithmetic, bit for bit


def test_cli_dry_run_on_a_saved_model(tmp_path, capsys):
    from ahn.train.__main__ import main
    from tasks.byte_tokenizer import save_byte_tokenizer

    folder = tmp_path / "base"
    tiny_model(vocab=259).save_pretrained(str(folder))
    save_byte_tokenizer(folder)
    code = main([f"base={folder}", "data.source=synthetic", "data.seq_len=128", "window.window_candidates=[32,64]",
                 "window.sink_candidates=[0,8]", "gradient_checkpointing=false", f"output_dir={tmp_path / 'o'}",
                 "--dry-run"])
    assert code == 0
    err = capsys.readouterr().err
    assert "dry run" in err and '"positions"' in err
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


def test_torchrun_two_cpu_ranks_match_grad_accumulation(tmp_path):
    """WORLD_SIZE=2 (gloo) averages the AHN gradients: same weights as one process with grad_accum=2."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    from tasks.byte_tokenizer import save_byte_tokenizer

    repo = Path(__file__).resolve().parents[2]
    folder = tmp_path / "base"
    tiny_model(vocab=259, initializer_range=IR).save_pretrained(str(folder))
    save_byte_tokenizer(folder)
    common = [f"base={folder}", "data.source=synthetic", "data.seq_len=128", "window.mode=fixed", "window.sinks=4",
              "window.window=28", "steps=3", "micro_batch_size=1", "optim.lr=1e-2", "gradient_checkpointing=false",
              "save_dtype=float32", "resume=never"]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "ahn.train", *common, "grad_accum=1", f"output_dir={tmp_path / 'ddp'}"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "ahn.train", *common, "grad_accum=2",
                             f"output_dir={tmp_path / 'one'}"], cwd=repo, env=env, capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = load_file(str(tmp_path / "ddp" / "model.safetensors")), load_file(str(tmp_path / "one" / "model.safetensors"))
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    log = [json.loads(x) for x in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and log[0]["tokens"] > 128


def test_cell_init_sets_the_initial_decay(tmp_path):
    # cell_init reaches every layer's cell before the first update: with lr ~ 0 the decay parameters stay
    # where the init put them (A = exp(A_log) in [A_min, A_max], dt = softplus(dt_bias) in [dt_min, dt_max])
    model = tiny_model(initializer_range=IR)
    cfg = _cfg(tmp_path, "steps=1", "optim.lr=1e-12", "optim.weight_decay=0",
               'cell_init={"gdn": {"A_min": 0.5, "A_max": 0.75, "dt_min": 1e-4, "dt_max": 2e-4}}')
    res = train(cfg, model=model, source=_source(2), echo=_quiet)
    for block in res.method.blocks:
        A = block.fn.A_log.detach().float().exp()
        dt = torch.nn.functional.softplus(block.fn.dt_bias.detach().float())
        assert ((A >= 0.5 - 1e-5) & (A <= 0.75 + 1e-5)).all(), A
        assert ((dt >= 1e-4 * (1 - 1e-4)) & (dt <= 2e-4 * (1 + 1e-4))).all(), dt


def test_init_ahn_warm_starts_the_cells_from_a_saved_run(tmp_path):
    model = tiny_model(initializer_range=IR)
    first = train(_cfg(tmp_path), model=model, source=_source(), echo=_quiet)
    ids = torch.randint(0, 300, (1, 80), generator=torch.Generator().manual_seed(7))
    trained = _student_logits(model, first.method, ids)
    # dry_run: one forward/backward and no update, so the cells hold exactly what was loaded
    warm = train(_cfg(tmp_path / "warm", f"init_ahn={tmp_path / 'out'}", "dry_run=true"), model=model,
                 source=_source(), echo=_quiet)
    assert torch.equal(_student_logits(model, warm.method, ids), trained)
    cold = train(_cfg(tmp_path / "cold", "dry_run=true"), model=model, source=_source(), echo=_quiet)
    assert not torch.allclose(_student_logits(model, cold.method, ids), trained)  # the control: a fresh init
