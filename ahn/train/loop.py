"""The AHN self-distillation trainer (`docs/AHN.md` §8), written to avoid the official trainer's defects (`docs/DEFECTS.md` D11).

One micro-batch: draw (sinks, window); the teacher is the frozen base with plain causal attention and no
memory (no grad); the student is the same weights with sinks + sliding window + AHN; the loss is the forward KL
at temperature 1 over the positions ``t >= W_tot`` (``ahn.train.loss``). Only AHN parameters train; this is
checked, not assumed. ``torch.distributed`` is used only when ``WORLD_SIZE > 1`` (gradients of the AHN
parameters are averaged across ranks by one all-reduce per update; no DDP wrapper is needed because the frozen
base has no gradients). Gradient checkpointing is optional. A fixed window not smaller than the sequence is a
clear error, not a crash. W&B is optional.

Outputs in ``output_dir``: the AHN weights in the released format (``model.safetensors`` + ``config.json``,
loadable by :func:`ahn.checkpoint.load_ahn_state_dict`), ``train_config.json``, ``train_log.jsonl`` and
``train_summary.json``. Resumable checkpoints go to ``checkpoint_dir`` (atomic folder renames).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ahn.train.config import (
    ConfigError,
    TrainConfig,
    config_hash,
    diff_keys,
    hashed_items,
    to_dict,
)
from ahn.train.data import MicroBatches, Source, batch_iterator
from ahn.train.loss import ce_targets, distill_loss, loss_positions
from ahn.train.sources import build_source
from ahn.train.windows import WindowError, WindowSampler

STATE_NAME = "trainer_state.pt"
LATEST_NAME = "latest"


class ResumeError(ConfigError):
    """A checkpoint that belongs to another run (config hash or world size differs)."""


class NonFiniteError(ConfigError):
    """A loss or gradient norm that is NaN or infinite: training stops before the update, and saves nothing."""


def _check_finite(step: int, losses: list[float], grad_norm: float | None = None) -> None:
    bad = [x for x in losses if not math.isfinite(x)]
    if bad or (grad_norm is not None and not math.isfinite(grad_norm)):
        what = f"loss {bad[0]}" if bad else f"gradient norm {grad_norm}"
        raise NonFiniteError(f"step {step}: {what} is not finite; stopping before the update (no checkpoint of "
                             "this step is written). Lower optim.lr, check the data, or resume from the last "
                             "checkpoint")


# ------------------------------------------------------------------------------------------------------
# environment


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistEnv:
    """torch.distributed only when WORLD_SIZE > 1 (torchrun); a single process never needs it (docs/DEFECTS.md D11)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_kind == "cuda":
        torch.cuda.set_device(local_rank)  # NCCL collectives and .cuda() use the current device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistEnv(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank)


def pick_device(cfg: TrainConfig, env: DistEnv) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    if torch.cuda.is_available():
        return torch.device("cuda", env.local_rank)
    return torch.device("cpu")


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA (or when asked), none (fp32) on CPU."""
    if cfg.precision == "fp32":
        return None
    if cfg.precision == "bf16" or device.type == "cuda":
        return torch.bfloat16
    return None


# ------------------------------------------------------------------------------------------------------
# model


def check_base_family(path_or_config: Any) -> None:
    """Fail before loading weights when the base is not a supported decoder family (e.g. GPT-2)."""
    from baselines.interface import SUPPORTED_MODEL_TYPES

    if isinstance(path_or_config, str | os.PathLike):
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(str(path_or_config))
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"base={str(path_or_config)!r}: no readable model config there "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); pass a local model "
                              "folder (config.json + *.safetensors) or a Hub id") from None
    else:
        config = path_or_config
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"unsupported base model family {model_type!r}: AHN attaches to decoder-only models with rotary "
            f"attention and an input-layernormed attention block; supported model types: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}")


def load_base(cfg: TrainConfig, device: torch.device, dtype: torch.dtype) -> tuple[nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_base_family(cfg.base)
    from baselines.precision import check_rope_fp32

    try:  # the boundary to transformers: a folder it cannot load is a config error, said in one line
        tokenizer = AutoTokenizer.from_pretrained(cfg.base)
        model = AutoModelForCausalLM.from_pretrained(cfg.base, dtype=dtype, attn_implementation="sdpa")
    except Exception as e:
        if not isinstance(e, OSError | ValueError | KeyError | RuntimeError) and type(e).__name__ != "SafetensorError":
            raise
        raise ConfigError(f"base={cfg.base!r}: cannot load the model ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}); re-download or re-save it") from None
    check_rope_fp32(model)  # from_pretrained(dtype=...) keeps them fp32 (docs/PARITY.md)
    return model.to(device).eval(), tokenizer


def ahn_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable set: parameters whose name contains 'ahn' (the official rule)."""
    return {n: p for n, p in model.named_parameters() if "ahn" in n}


def freeze_all_but_ahn(model: nn.Module) -> dict[str, nn.Parameter]:
    """Freeze everything, then enable the AHN parameters; returns them. Raises if there are none."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = ahn_parameters(model)
    if not params:
        raise RuntimeError("the model has no AHN parameters (no name contains 'ahn'): attach AHN first")
    for p in params.values():
        p.requires_grad_(True)
    return params


def build_optimizer(params: dict[str, nn.Parameter], cfg: TrainConfig) -> torch.optim.AdamW:
    o = cfg.optim
    decay = [p for n, p in params.items() if not any(s in n for s in o.no_decay)]
    no_decay = [p for n, p in params.items() if any(s in n for s in o.no_decay)]
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=o.lr, betas=tuple(o.betas), eps=o.eps)


def check_trainable(model: nn.Module, params: dict[str, nn.Parameter], optimizer: torch.optim.Optimizer) -> None:
    """Only AHN parameters require grad, and the optimiser holds exactly them (checked, not assumed)."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if trainable != set(params):
        extra, missing = sorted(trainable - set(params)), sorted(set(params) - trainable)
        raise RuntimeError(f"trainable set is not the AHN set: extra {extra[:5]}, missing {missing[:5]}")
    in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if in_opt != {id(p) for p in params.values()} or len(in_opt) != len(params):
        raise RuntimeError("the optimiser's parameters are not exactly the AHN parameters")


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """HF Trainer's schedules: linear warm-up over ceil(ratio * steps) updates, then cosine/linear/constant."""
    total, o = cfg.steps, cfg.optim
    warm = math.ceil(o.warmup_ratio * total)

    def f(step: int) -> float:
        if step < warm:
            return step / max(1, warm)
        if o.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total - warm))
        shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if o.schedule == "cosine" else 1.0 - progress
        return o.min_lr_ratio + (1.0 - o.min_lr_ratio) * shape

    return f


# ------------------------------------------------------------------------------------------------------
# checkpoints


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _load_trainer_state(path: Path) -> dict[str, Any]:
    """The trainer state of a checkpoint, unpickled with ``weights_only=True``: a resume folder is user input,
    so only tensors and plain containers are read, never arbitrary objects (code)."""
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError, ValueError) as e:
        lines = [x for x in str(e).splitlines() if x.strip()]
        why = next((x for x in lines if "GLOBAL" in x), lines[0] if lines else type(e).__name__)
        raise ResumeError(f"cannot read the trainer state {path}: {why} (a resume folder may hold only tensors "
                          "and plain containers; resume=never starts afresh)") from None
    if not isinstance(state, dict):
        raise ResumeError(f"{path}: the trainer state is a {type(state).__name__}, not a dict")
    return state


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(folder: Path, step: int, model: nn.Module, cfg: TrainConfig, base_config: dict,
                    optimizer: torch.optim.Optimizer, scheduler: Any, env: DistEnv, device: torch.device,
                    micro_batches_done: int) -> Path:
    """``folder/step-NNNNNN/`` with exact (un-cast) AHN weights in the released layout and the trainer state.

    Written to a temporary folder and renamed into place, then ``latest`` is updated atomically: a crash at
    any moment leaves the previous checkpoint intact.
    """
    from ahn.checkpoint import save_ahn_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    tmp = folder / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_ahn_checkpoint(model, tmp / "ahn", cfg.cell, base_config, dtype=None)
    state = {
        "step": step, "micro_batches_done": micro_batches_done, "config": to_dict(cfg),
        "config_hash": config_hash(cfg), "world_size": env.world, "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "rng": _rng_state(device),
    }
    torch.save(state, tmp / STATE_NAME)
    final = folder / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_atomic(folder / LATEST_NAME, name + "\n")
    return final


def prune_checkpoints(folder: Path, keep: int) -> None:
    done = sorted(p for p in folder.glob("step-*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(cfg: TrainConfig) -> Path | None:
    """The checkpoint to resume from: ``resume`` = a folder, "auto" (latest in checkpoint_dir, if any), "never"."""
    if cfg.resume == "never":
        return None
    if cfg.resume != "auto":
        p = Path(cfg.resume)
        if not (p / STATE_NAME).is_file():
            raise ResumeError(f"resume={cfg.resume!r} is not a checkpoint folder (no {STATE_NAME} in it)")
        return p
    folder = checkpoint_dir(cfg)
    latest = folder / LATEST_NAME
    if latest.is_file():
        p = folder / latest.read_text().strip()
        if (p / STATE_NAME).is_file():
            return p
    return None


def checkpoint_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else Path(cfg.output_dir) / "checkpoints"


def check_resumable(state: dict[str, Any], cfg: TrainConfig, env: DistEnv, where: Path) -> None:
    """Refuse a checkpoint of another run: name every differing config key."""
    if state["config_hash"] != config_hash(cfg):
        diffs = diff_keys(hashed_items(state["config"]), hashed_items(cfg))
        raise ResumeError(f"cannot resume from {where}: it was trained with another configuration (hash "
                          f"{state['config_hash']} vs {config_hash(cfg)}); differing keys (checkpoint -> now): "
                          + "; ".join(diffs) + ". Use another output/checkpoint folder or resume='never'.")
    if state["world_size"] != env.world:
        raise ResumeError(f"cannot resume from {where}: it was trained with world_size={state['world_size']}, "
                          f"now {env.world} (the data order and batch would change)")


# ------------------------------------------------------------------------------------------------------
# logging


class RunLog:
    """Console + JSONL (+ W&B when asked and installed); only the main rank writes."""

    def __init__(self, path: Path | None, env: DistEnv, wandb_project: str | None, config: dict,
                 echo: Callable[[str], None] | None = None, append: bool = False) -> None:
        self.env, self.echo = env, echo or (lambda s: print(s, file=sys.stderr, flush=True))
        self.file = None
        self.wandb = None
        if not env.main:
            return
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = path.open("a" if append else "w")
        if wandb_project:
            try:
                import wandb  # type: ignore[import-not-found]

                self.wandb = wandb.init(project=wandb_project, config=config)
            except Exception as e:  # W&B is optional: never fail the run for it
                self.echo(f"[ahn.train] W&B disabled ({type(e).__name__}: {e})")

    def info(self, msg: str) -> None:
        if self.env.main:
            self.echo(f"[ahn.train] {msg}")

    def record(self, row: dict[str, Any]) -> None:
        if not self.env.main:
            return
        if self.file is not None:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in row.items() if isinstance(v, int | float)}, step=row.get("step"))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.wandb is not None:
            self.wandb.finish()


# ------------------------------------------------------------------------------------------------------
# the trainer


@dataclass
class TrainResult:
    output_dir: Path
    steps_done: int
    complete: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    tokens_per_s: float | None = None
    peak_mem_bytes: int | None = None
    resumed_from: Path | None = None
    method: Any = None


def _gc_enabled(model: nn.Module) -> bool:
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name):
            return bool(getattr(model, name))
    return False


def _set_gc(model: nn.Module, on: bool) -> None:
    """HF gradient checkpointing, non-reentrant (frozen inputs need no grad); newer names first."""
    if on:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        fn = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
        fn()


def _hidden(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model.base_model(input_ids=ids, use_cache=False).last_hidden_state


def micro_step(model: nn.Module, method: Any, batch_ids: torch.Tensor, labels: torch.Tensor, draw: Any,
               cfg: TrainConfig, amp: torch.dtype | None, scale: float, gc: bool) -> tuple[float, int]:
    """Teacher + student forward and backward of one micro-batch; returns (loss, positions)."""
    device_type = batch_ids.device.type
    cast = torch.autocast(device_type, dtype=amp) if amp is not None else contextlib.nullcontext()
    head = model.get_output_embeddings()
    with method.configured(sinks=draw.sinks, window=draw.window):
        with cast:
            teacher = None
            if cfg.loss == "kl":
                model.eval()
                with torch.no_grad(), method.bypassed():
                    teacher = _hidden(model, batch_ids)
            model.train(gc)  # HF checkpoints layers only in training mode
            student = _hidden(model, batch_ids)
            if cfg.loss == "kl":
                mask = loss_positions(labels, draw.total, cfg.kl_positions)
                loss, n = distill_loss(student, teacher, head, mask, loss="kl", chunk=cfg.loss_chunk,
                                       kl_impl=cfg.kl_impl)
            else:  # CE always needs a next token: shifted positions
                mask = loss_positions(labels, draw.total, "shifted")
                loss, n = distill_loss(student, None, head, mask, loss="ce", targets=ce_targets(labels),
                                       chunk=cfg.loss_chunk)
        (loss * scale).backward()  # inside `configured`: checkpoint recomputation sees the same window
    model.eval()
    return float(loss.detach()), n


def _all_reduce_grads(params: list[nn.Parameter], env: DistEnv) -> None:
    if env.world <= 1:
        return
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= env.world
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(g).to(g.dtype)
        offset += n


def train(cfg: TrainConfig, *, model: nn.Module | None = None, tokenizer: Any = None, source: Source | None = None,
          echo: Callable[[str], None] | None = None) -> TrainResult:
    """Run (or resume) the recipe. ``model``/``tokenizer``/``source`` override what ``cfg`` would load.

    A passed model is used as it is (device and dtype) and given back as it came: AHN detached, the
    requires_grad flags and the gradient-checkpointing setting restored.
    """
    from baselines import attach, make_method
    from baselines.interface import check_supported
    from baselines.precision import check_rope_fp32

    t_setup = time.time()
    device_kind = "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) \
        else "cpu"
    env = init_distributed(device_kind)
    device = pick_device(cfg, env)
    amp = autocast_dtype(cfg, device)
    if model is None:
        model, tok = load_base(cfg, device, torch.bfloat16 if amp is not None and device.type == "cuda"
                               else torch.float32)
        tokenizer = tokenizer or tok
    else:
        try:
            check_supported(model)
            check_rope_fp32(model)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        device = next(model.parameters()).device
    if source is None:
        if tokenizer is None:
            raise ConfigError("no tokenizer: pass one, or a data source")
        source = build_source(cfg.data, tokenizer, seed=cfg.seed)
    pad_id = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    pad_id = pad_id if pad_id is not None else 0

    base_config = model.config.to_dict()
    out_dir = Path(cfg.output_dir)
    ckpt_dir = checkpoint_dir(cfg)
    resume_from = None if cfg.dry_run else find_checkpoint(cfg)
    state = None
    if resume_from is not None:
        state = _load_trainer_state(resume_from / STATE_NAME)
        check_resumable(state, cfg, env, resume_from)

    torch.manual_seed(cfg.seed)
    # Every micro-step runs under method.configured(<its drawn sinks and window>) (micro_step); the window given
    # here only constructs the method (random mode has no single window to give).
    build_window = {"sinks": cfg.window.sinks, "window": cfg.window.window} if cfg.window.mode == "fixed" \
        else {"sinks": 0, "window": 1}
    method = make_method("ahn", cell=cfg.cell, backend=cfg.backend, **build_window)
    method.blocks = method.build_blocks(model).to(device=device, dtype=torch.float32)  # fp32 master weights
    if cfg.cell_init.get(cfg.cell):  # a non-paper init (e.g. a longer initial memory for the tiny world)
        for block in method.blocks:
            block.fn.reset_parameters(**cfg.cell_init[cfg.cell])

    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    gc_before = _gc_enabled(model)
    run_log = None
    try:
        with attach(model, method):
            params = freeze_all_but_ahn(model)
            optimizer = build_optimizer(params, cfg)
            check_trainable(model, params, optimizer)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
            start_step = 0
            from ahn.checkpoint import load_ahn_state_dict

            if state is None and cfg.init_ahn:
                load_ahn_state_dict(cfg.init_ahn, model, strict=True)
            if state is not None:
                load_ahn_state_dict(resume_from / "ahn", model, strict=True)
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                _set_rng_state(state["rng"], device)
                start_step = int(state["step"])
            if cfg.gradient_checkpointing:
                _set_gc(model, True)
            n_params = sum(p.numel() for p in params.values())
            run_log = RunLog(None if cfg.dry_run else out_dir / "train_log.jsonl", env, cfg.wandb, to_dict(cfg),
                             echo, append=state is not None)
            run_log.info(f"AHN-{cfg.cell}: {len(params)} tensors, {n_params:,} trainable parameters "
                         f"(base frozen); device {device}, autocast {amp}, world {env.world}; data "
                         f"{source.describe()}; config hash {config_hash(cfg)}"
                         + (f"; resuming from {resume_from} at step {start_step}" if state is not None else ""))
            if env.main and not cfg.dry_run:
                out_dir.mkdir(parents=True, exist_ok=True)
                _write_atomic(out_dir / "train_config.json",
                              json.dumps({**to_dict(cfg), "config_hash": config_hash(cfg)}, indent=2) + "\n")
            result = _loop(cfg, model, method, params, optimizer, scheduler, source, pad_id, env, device, amp,
                           start_step, run_log, base_config, ckpt_dir, t_setup)
            result.resumed_from = resume_from
            result.method = method
            if env.main and not cfg.dry_run:
                _finish(cfg, model, base_config, out_dir, result, n_params)
            if env.world > 1:
                import torch.distributed as dist

                dist.barrier()
            return result
    finally:
        if run_log is not None:
            run_log.close()
        if cfg.gradient_checkpointing and not gc_before:
            _set_gc(model, False)
        for n, p in model.named_parameters():
            if n in flags:
                p.requires_grad_(flags[n])
        model.eval()


def _loop(cfg, model, method, params, optimizer, scheduler, source, pad_id, env, device, amp, start_step,
          run_log, base_config, ckpt_dir, t_setup) -> TrainResult:
    sampler = WindowSampler(cfg.window, seed=cfg.seed)
    batches = MicroBatches(source, cfg.micro_batch_size, pad_id, seed=cfg.seed, shuffle=cfg.data.shuffle)
    per_step = cfg.grad_accum * env.world
    end_step = cfg.steps if cfg.max_steps is None else min(cfg.steps, cfg.max_steps)
    if cfg.dry_run:
        end_step = min(end_step, start_step + 1)
    indices = [s * per_step + a * env.world + env.rank
               for s in range(start_step, end_step) for a in range(cfg.grad_accum)]
    stream = batch_iterator(batches, indices, cfg.data.num_workers)
    plist = list(params.values())
    history: list[dict[str, Any]] = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run_log.info(f"setup {time.time() - t_setup:.1f}s; steps {start_step} -> {end_step} of {cfg.steps} "
                 f"({cfg.grad_accum} x {cfg.micro_batch_size} x {env.world} sequences per update)")
    t_run = time.time()
    tokens_total = 0
    step = start_step
    for step in range(start_step, end_step):
        t0 = time.time()
        lr = scheduler.get_last_lr()[0]
        losses, positions, draws, skipped, tokens = [], 0, [], 0, 0
        for _ in range(cfg.grad_accum):
            batch = next(stream)
            ids = batch.input_ids.to(device, non_blocking=True)
            labels = batch.labels.to(device, non_blocking=True)
            try:
                draw = sampler.draw(ids.shape[1], batch.index)
            except WindowError:
                if cfg.window.on_short == "skip":
                    skipped += 1
                    continue
                raise
            loss, n = micro_step(model, method, ids, labels, draw, cfg, amp, 1.0 / cfg.grad_accum,
                                 cfg.gradient_checkpointing)
            losses.append(loss)
            positions += n
            draws.append([draw.sinks, draw.window])
            tokens += batch.n_tokens
        _check_finite(step + 1, losses)
        if cfg.dry_run:
            grads = {n: float(p.grad.norm()) if p.grad is not None else 0.0 for n, p in params.items()}
            row = {"dry_run": True, "loss": losses[0] if losses else None, "positions": positions,
                   "windows": draws, "grad_norm_o_proj": sum(v for n, v in grads.items() if "o_proj" in n)}
            if device.type == "cuda":
                row["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
            run_log.info(f"dry run: {json.dumps(row)}")
            optimizer.zero_grad(set_to_none=True)
            history.append(row)
            return TrainResult(Path(cfg.output_dir), start_step, False, history)
        for p in plist:  # unused parameters (GDN's D) get a zero gradient, so weight decay reaches them
            if p.grad is None:  # as it does under the official DeepSpeed run (flat gradient buffers)
                p.grad = torch.zeros_like(p)
        _all_reduce_grads(plist, env)
        if cfg.optim.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(plist, cfg.optim.grad_clip))
        else:
            grad_norm = float(torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in plist if p.grad is not None])))
        _check_finite(step + 1, losses, grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.time() - t0
        tokens_all = tokens * env.world
        tokens_total += tokens_all
        mean_loss = sum(losses) / len(losses) if losses else None
        row = {"step": step + 1, "loss": mean_loss, cfg.loss: mean_loss, "lr": lr, "grad_norm": grad_norm,
               "positions": positions, "tokens": tokens_all, "tokens_per_s": tokens_all / max(dt, 1e-9),
               "step_s": dt, "windows": draws, "skipped": skipped, "elapsed_s": time.time() - t_run}
        if device.type == "cuda":
            row["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        history.append(row)
        run_log.record(row)
        if (step + 1) % cfg.log_every == 0 or step + 1 == end_step:
            shown = "n/a" if mean_loss is None else f"{mean_loss:.5f}"
            run_log.info(f"step {step + 1}/{cfg.steps} {cfg.loss} {shown} lr {lr:.3g} grad {grad_norm:.3g} "
                         f"tok/s {row['tokens_per_s']:.0f} windows {draws}")
        done = step + 1
        if cfg.time_budget_s is not None and done < end_step and _out_of_time(time.time() - t_run, cfg, env):
            run_log.info(f"time budget of {cfg.time_budget_s:g}s spent: stopping at step {done} (resumable)")
            end_step = done
            break
        if env.main and cfg.save_every > 0 and done % cfg.save_every == 0 and done < end_step:
            save_checkpoint(ckpt_dir, done, model, cfg, base_config, optimizer, scheduler, env, device,
                            done * per_step)
            prune_checkpoints(ckpt_dir, cfg.keep_checkpoints)
    done = end_step
    if env.main and done > start_step:
        save_checkpoint(ckpt_dir, done, model, cfg, base_config, optimizer, scheduler, env, device, done * per_step)
        prune_checkpoints(ckpt_dir, cfg.keep_checkpoints)
    elapsed = time.time() - t_run
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return TrainResult(Path(cfg.output_dir), done, done >= cfg.steps, history,
                       tokens_per_s=tokens_total / elapsed if elapsed > 0 and tokens_total else None,
                       peak_mem_bytes=peak)


def _out_of_time(elapsed: float, cfg: TrainConfig, env: DistEnv) -> bool:
    """Every rank stops at the same step: rank 0's clock decides."""
    over = elapsed > cfg.time_budget_s
    if env.world > 1:
        import torch.distributed as dist

        flag = torch.tensor([float(over)])
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.broadcast(flag, src=0)
        over = bool(flag.item())
    return over


def _finish(cfg: TrainConfig, model: nn.Module, base_config: dict, out_dir: Path, result: TrainResult,
            n_params: int) -> None:
    """The released-format AHN weights and a summary next to the log."""
    from ahn.checkpoint import save_ahn_checkpoint

    save_ahn_checkpoint(model, out_dir, cfg.cell, base_config,
                        dtype=torch.bfloat16 if cfg.save_dtype == "bfloat16" else torch.float32)
    last = result.history[-1] if result.history else {}
    summary = {
        "config_hash": config_hash(cfg), "cell": cfg.cell, "steps_done": result.steps_done, "steps": cfg.steps,
        "complete": result.complete, "final_loss": last.get("loss"), "trainable_parameters": n_params,
        "tokens_per_s": result.tokens_per_s, "peak_mem_bytes": result.peak_mem_bytes,
        "torch": torch.__version__, "resumed_from": str(result.resumed_from) if result.resumed_from else None,
    }
    try:
        import transformers

        summary["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover
        pass
    _write_atomic(out_dir / "train_summary.json", json.dumps(summary, indent=2) + "\n")
