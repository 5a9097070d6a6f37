"""Pretrain the tiny world's base model: a few-million-parameter Qwen2 over the byte tokenizer.

Why: the tiny world needs a base that really uses long context, so that sinks + window visibly lose what full
attention keeps and an AHN has something to recover. The base is trained with plain full attention (no AHN) on
the synthetic corpus (:mod:`tasks.synthetic.corpus`: passkey / number_string / kv_retrieval documents with their
answers, plus prose), and evaluated on held-out synthetic samples every ``eval_every`` steps: accuracy is the
share of samples whose whole reference completion is the greedy (arg-max) continuation, checked in one
teacher-forced forward. Training stops early once every eval task reaches ``target_accuracy``.

RoPE: ``rope_theta`` = 1e6 (Qwen2.5's value). Why large: retrieval needs attention that matches content
whatever the distance, which RoPE only allows through rotary channel pairs that barely turn over that distance.
A small theta whose slowest channel turns fully within the training length (the "every phase seen" rule for
perplexity extrapolation) leaves no such channel, and a needle's score would swing with its distance. With
head_dim 64 and theta 1e6, 12 of the 32 pairs turn by less than 0.5 rad over 2,048 tokens and 7 still do over
16,384 (8x): content matching stays possible up to 8x the training length, while the faster pairs keep local
order (:func:`stationary_pairs` reports the counts in ``eval.json``). The price is the usual one: the pairs in
between meet phases beyond 2,048 they never saw, so full attention may degrade past the training length (the
paper's full-attention rows degrade the same way past Qwen's native 32k).

Output (an HF folder): ``config.json``, ``model.safetensors`` (bf16), tokenizer files,
``generation_config.json`` (eos = ``<|im_end|>``, repetition_penalty 1.0, greedy), ``pretrain_config.json``,
``train_log.jsonl`` (loss, lr, tokens/s, and eval rows) and ``eval.json`` (final accuracies, also at longer
lengths when ``final_eval_lengths`` is set).

``python -m ahn.train.tiny_base --output-dir leaderboards/tiny/base [key=value ...]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ahn.train.config import ConfigError, apply_overrides, from_dict, parse_override

EVAL_TASKS = ("passkey", "number_string", "kv_retrieval")


@dataclass
class TinyBaseConfig:
    output_dir: str = "leaderboards/tiny/base"
    seed: int = 0
    # an HF folder of a base with this architecture: training continues from its weights instead of a fresh
    # init (the optimiser state starts anew; warm-up and schedule run as configured)
    init_from: str | None = None
    # model (Qwen2 architecture)
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 688
    rope_theta: float = 1e6
    max_position_embeddings: int = 32768
    tie_word_embeddings: bool = True
    # data: each step draws one length from seq_lens and fills tokens_per_step with documents of that length
    seq_lens: list[int] = field(default_factory=lambda: [512, 1024, 2048])
    seq_len_weights: list[float] | None = None
    # length curriculum: over the first length_warmup * steps steps the lengths join one at a time, shortest
    # first, at even intervals. Retrieval is learnt far faster in short rows (at initialisation attention spreads
    # over the whole row, so the one token that matters gets ~1/L of it), then extended to longer ones
    length_warmup: float = 0.0
    # a row of length L holds one document whose prompt has between min_len_frac * (L - answer_room) and
    # L - answer_room tokens: the room keeps the completion, its newline and <|im_end|> (kv_retrieval: 38)
    # whole, so no answer is ever cut. (Cut answers followed by <|im_end|> taught the model to stop instead of
    # answering once a prompt reached the row length, which is exactly where the evaluation sits.)
    answer_room: int = 64
    min_len_frac: float = 0.85
    # with probability kv_query_prob a kv_retrieval document keeps kv_query_share of the row free and fills it
    # with up to kv_queries more questions on other keys of the same JSON (0: the corpus document alone)
    kv_queries: int = 0
    kv_query_share: float = 0.4
    kv_query_prob: float = 0.5
    tokens_per_step: int = 32768
    tasks: list[str] = field(default_factory=lambda: ["passkey", "number_string", "kv_retrieval", "prose"])
    task_weights: list[float] | None = None
    answer_weight: float = 4.0  # loss weight of the answer tokens (the retrieval signal) ...
    context_weight: float = 1.0  # ... and of every other token
    num_workers: int = 0
    # optimisation
    steps: int = 2000
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU
    device: str = "auto"
    compile: bool = False
    # evaluation
    eval_every: int = 100
    eval_lengths: list[int] = field(default_factory=lambda: [2048])
    eval_tasks: list[str] = field(default_factory=lambda: list(EVAL_TASKS))
    eval_samples: int = 16  # per task and length
    eval_batch: int = 16
    target_accuracy: float = 0.95
    final_eval_lengths: list[int] = field(default_factory=list)  # extra lengths checked once at the end
    time_budget_s: float | None = None  # stop (and save) after this much training time
    anneal_by_time: bool = False  # schedule progress = max(step/steps, time/time_budget_s): the lr still decays
    log_every: int = 10


def rope_theta_of(config: Any) -> float:
    """transformers 5 keeps theta in ``rope_parameters``; older configs have ``rope_theta``."""
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def stationary_pairs(theta: float, head_dim: int, length: int, max_phase: float = 0.5) -> int:
    """Rotary channel pairs that turn by at most ``max_phase`` radians over ``length`` positions."""
    return sum(1 for c in range(head_dim // 2) if theta ** (-2 * c / head_dim) * length <= max_phase)


def validate(cfg: TinyBaseConfig) -> TinyBaseConfig:
    from tasks.synthetic.corpus import ALL_TASKS

    if cfg.num_heads % cfg.num_kv_heads:
        raise ConfigError(f"num_heads={cfg.num_heads} must be a multiple of num_kv_heads={cfg.num_kv_heads}")
    bad = [t for t in cfg.tasks if t not in ALL_TASKS]
    if bad:
        raise ConfigError(f"unknown corpus task(s) {bad}; valid: {', '.join(ALL_TASKS)}")
    bad = [t for t in cfg.eval_tasks if t not in ALL_TASKS or t == "prose"]
    if bad:
        raise ConfigError(f"unknown eval task(s) {bad}; valid: {', '.join(t for t in ALL_TASKS if t != 'prose')}")
    if cfg.init_from is not None and not (Path(cfg.init_from) / "config.json").exists():
        raise ConfigError(f"init_from={cfg.init_from!r} is not an HF model folder (no config.json)")
    if not cfg.seq_lens or min(cfg.seq_lens) < 64 or cfg.tokens_per_step < max(cfg.seq_lens):
        raise ConfigError("seq_lens must be >= 64 and tokens_per_step at least the longest seq_len")
    if cfg.seq_len_weights is not None and len(cfg.seq_len_weights) != len(cfg.seq_lens):
        raise ConfigError("seq_len_weights must have one weight per seq_len")
    if cfg.context_weight <= 0 or cfg.answer_weight <= 0:
        raise ConfigError("answer_weight and context_weight must be > 0")
    if not 0 <= cfg.length_warmup <= 1:
        raise ConfigError(f"length_warmup must be in [0, 1], got {cfg.length_warmup}")
    if not 0 <= cfg.answer_room <= min(cfg.seq_lens) // 2 or not 0 < cfg.min_len_frac <= 1:
        raise ConfigError("answer_room must be in [0, min(seq_lens) / 2] and min_len_frac in (0, 1]")
    if cfg.rope_theta <= 1:
        raise ConfigError(f"rope_theta must be > 1, got {cfg.rope_theta}")
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"precision must be auto, bf16 or fp32, got {cfg.precision!r}")
    return cfg


def model_config(cfg: TinyBaseConfig):
    from transformers import Qwen2Config

    from tasks.byte_tokenizer import ENDOFTEXT, IM_END, SPECIAL_TOKENS, VOCAB_SIZE

    theta = float(cfg.rope_theta)
    ids = {t: 256 + i for i, t in enumerate(SPECIAL_TOKENS)}
    return Qwen2Config(
        vocab_size=VOCAB_SIZE, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim, max_position_embeddings=cfg.max_position_embeddings, rope_theta=theta,
        rms_norm_eps=1e-6, tie_word_embeddings=cfg.tie_word_embeddings, use_sliding_window=False,
        bos_token_id=None, eos_token_id=ids[IM_END], pad_token_id=ids[ENDOFTEXT], initializer_range=0.02,
    )


# ------------------------------------------------------------------------------------------------------
# data


class PretrainBatches(torch.utils.data.Dataset):
    """Batch of step ``s``: one length L from ``seq_lens``, ``tokens_per_step // L`` documents of about L tokens.

    Returns ids [B, L], targets [B, L] (next token, -100 on padding) and loss weights [B, L] (answer tokens
    weigh ``answer_weight``). A pure function of (seed, step): workers and restarts see the same batches.
    """

    def __init__(self, cfg: TinyBaseConfig) -> None:
        from tasks.byte_tokenizer import ENDOFTEXT, IM_END, SPECIAL_TOKENS

        self.cfg = cfg
        ids = {t: 256 + i for i, t in enumerate(SPECIAL_TOKENS)}
        self.eos, self.pad = ids[IM_END], ids[ENDOFTEXT]

    def lengths_at(self, step: int) -> tuple[list[int], list[float] | None]:
        """The lengths (and their weights) drawn from at ``step``. During the length warm-up the lengths join
        one at a time, shortest first, at even intervals; afterwards all of them are drawn."""
        cfg = self.cfg
        warm = cfg.length_warmup * cfg.steps
        if step >= warm:
            return list(cfg.seq_lens), cfg.seq_len_weights
        weights = cfg.seq_len_weights or [1.0] * len(cfg.seq_lens)
        ranked = sorted(set(cfg.seq_lens))
        cap = ranked[min(len(ranked) - 1, int(step * len(ranked) / warm))]
        keep = [(n, x) for n, x in zip(cfg.seq_lens, weights) if n <= cap]
        return [n for n, _ in keep], [x for _, x in keep]

    def __len__(self) -> int:  # pragma: no cover - the sampler decides
        return 1 << 62

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from tasks.synthetic.corpus import training_documents

        cfg = self.cfg
        rng = random.Random(f"tiny-base/{cfg.seed}/{step}")
        length = rng.choices(*self.lengths_at(step))[0]
        n = max(1, cfg.tokens_per_step // length)
        ids = torch.full((n, length), self.pad, dtype=torch.long)
        tgt = torch.full((n, length), -100, dtype=torch.long)
        w = torch.zeros((n, length), dtype=torch.float32)
        hi = length - cfg.answer_room
        for i in range(n):
            task = rng.choices(cfg.tasks, weights=cfg.task_weights)[0]
            top = hi
            more = task == "kv_retrieval" and cfg.kv_queries > 0 and rng.random() < cfg.kv_query_prob
            if more:
                top = max(1, int(hi * (1 - cfg.kv_query_share)))
            doc = next(training_documents(rng.getrandbits(32), max(1, int(cfg.min_len_frac * top)), top, [task],
                                          n_docs=1))
            pieces = [(doc.text[: doc.answer_start], False), (doc.text[doc.answer_start:], True)]
            if more:
                pieces += _extra_kv_queries(doc.text[: doc.answer_start], cfg.kv_queries, length - 1 - len(
                    doc.text.encode("utf-8")), rng)
            data: list[int] = []
            weights: list[float] = []
            for text, is_answer in pieces:
                b = list(text.encode("utf-8"))
                data += b
                weights += [cfg.answer_weight if is_answer else cfg.context_weight] * len(b)
            data.append(self.eos)
            weights.append(weights[-1] if weights else cfg.context_weight)
            t = min(len(data), length)  # a document longer than the row (never with the room) loses its tail
            ids[i, :t] = torch.tensor(data[:t])
            tgt[i, : t - 1] = ids[i, 1:t]  # never a stop target inside a cut document
            # position p predicts token p+1, so it carries the weight of token p+1
            w[i, : t - 1] = torch.tensor(weights[1:t])
        return ids, tgt, w


_KV_PAIR = re.compile(r'"([0-9a-f-]{36})": "([0-9a-f-]{36})"')


def _extra_kv_queries(prompt: str, most: int, room: int, rng: random.Random) -> list[tuple[str, bool]]:
    """More questions on a kv_retrieval document (other keys of its JSON, in the task's own query format),
    as many as ``room`` bytes allow, up to ``most``: a dozen retrievals a document instead of one."""
    from tasks.synthetic.infinitebench_style import KV_INPUT

    asked = prompt[prompt.rindex('Key: "') + 6:][:36]
    pairs = [kv for kv in _KV_PAIR.findall(prompt) if kv[0] != asked]
    rng.shuffle(pairs)
    out: list[tuple[str, bool]] = []
    for key, value in pairs[:most]:
        q = KV_INPUT.format(key=key)
        if len(q) + len(value) + 1 > room:
            break
        out += [(q, False), (value + "\n", True)]
        room -= len(q) + len(value) + 1
    return out


def _identity(x):
    return x


# ------------------------------------------------------------------------------------------------------
# evaluation


@dataclass
class EvalItem:
    task: str
    length: int
    ids: list[int]
    answer_start: int  # index of the first completion token


def eval_items(tasks: list[str], lengths: list[int], n: int, seed: int) -> list[EvalItem]:
    """Held-out samples (seeds disjoint from training draws) at evenly spread needle depths."""
    from tasks.synthetic import default_depths, generate, sample_seed

    items = []
    for length in lengths:
        for task in tasks:
            for i, depth in enumerate(default_depths(n)):
                gen = generate(task, length, depth, sample_seed(seed + 1_000_003, f"eval/{task}", length, i),
                               tolerance=None)
                prompt = list(gen.prompt.encode("utf-8"))
                completion = list(gen.completion.encode("utf-8"))
                items.append(EvalItem(task, length, prompt + completion, len(prompt)))
    return items


@torch.no_grad()
def evaluate(model: nn.Module, items: list[EvalItem], batch: int, device: torch.device,
             amp: torch.dtype | None, pad: int, nll: dict[str, float] | None = None) -> dict[str, float]:
    """Share of items whose whole completion is the arg-max continuation (= greedy decoding), per task@length.

    ``nll``, when given, receives the mean per-token NLL of the completions per task@length: it falls long
    before accuracy rises, so a log shows whether retrieval is being learnt at all."""
    was = model.training
    model.eval()
    hits: dict[str, list[int]] = {}
    nlls: dict[str, list[float]] = {}
    order = sorted(range(len(items)), key=lambda i: len(items[i].ids))
    for b in range(0, len(order), batch):
        group = [items[i] for i in order[b: b + batch]]
        length = max(len(it.ids) for it in group)
        ids = torch.full((len(group), length), pad, dtype=torch.long)
        for i, it in enumerate(group):
            ids[i, : len(it.ids)] = torch.tensor(it.ids)
        ids = ids.to(device)
        cast = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
        with cast:
            logits = model(input_ids=ids, use_cache=False).logits
        pred = logits.argmax(-1)
        for i, it in enumerate(group):
            a, e = it.answer_start, len(it.ids)
            ok = bool((pred[i, a - 1: e - 1] == ids[i, a:e]).all())
            hits.setdefault(f"{it.task}@{it.length}", []).append(int(ok))
            if nll is not None:
                ce = F.cross_entropy(logits[i, a - 1: e - 1].float(), ids[i, a:e])
                nlls.setdefault(f"{it.task}@{it.length}", []).append(float(ce))
    model.train(was)
    if nll is not None:
        nll.update({k: round(sum(v) / len(v), 4) for k, v in sorted(nlls.items())})
    return {k: sum(v) / len(v) for k, v in sorted(hits.items())}


# ------------------------------------------------------------------------------------------------------
# training


def build_model(cfg: TinyBaseConfig) -> nn.Module:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(cfg.seed)
    return AutoModelForCausalLM.from_config(model_config(cfg), attn_implementation="sdpa")


ARCHITECTURE_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                       "num_key_value_heads", "head_dim", "tie_word_embeddings")


def load_init(model: nn.Module, cfg: TinyBaseConfig) -> None:
    """Copy the weights of ``cfg.init_from`` into ``model``; a different architecture or RoPE theta is an error."""
    from transformers import AutoModelForCausalLM

    src = AutoModelForCausalLM.from_pretrained(str(cfg.init_from), dtype=torch.float32)
    want, got = model.config, src.config
    diff = {f: (getattr(got, f, None), getattr(want, f, None)) for f in ARCHITECTURE_FIELDS
            if getattr(got, f, None) != getattr(want, f, None)}
    if rope_theta_of(got) != rope_theta_of(want):
        diff["rope_theta"] = (rope_theta_of(got), rope_theta_of(want))
    if diff:
        raise ConfigError(f"init_from={cfg.init_from!r} does not match this config: "
                          + ", ".join(f"{f} {a} (config: {b})" for f, (a, b) in diff.items()))
    model.load_state_dict(src.state_dict(), strict=True)


def _lr_factor(cfg: TinyBaseConfig, step: int, elapsed: float = 0.0) -> float:
    """Linear warm-up, then cosine to ``min_lr_ratio``. With ``anneal_by_time`` the cosine also follows the
    clock, so a run cut by its time budget on a slower machine still ends at a low learning rate."""
    if step < cfg.warmup_steps:
        return (step + 1) / max(1, cfg.warmup_steps)
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if cfg.anneal_by_time and cfg.time_budget_s:
        progress = max(progress, elapsed / cfg.time_budget_s)
    progress = min(1.0, progress)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def write_portable_config(folder: Path) -> None:
    """Repeat RoPE's theta at the top of ``config.json`` as ``rope_theta``.

    transformers 5 writes theta inside ``rope_parameters`` only; transformers 4.x reads ``rope_theta`` and,
    finding none, silently uses 10,000 instead of the tiny base's 1e6 (other answers, no error). With both
    keys the folder loads the same model on either.
    """
    path = Path(folder) / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    theta = (config.get("rope_parameters") or {}).get("rope_theta")
    if theta is not None:
        config["rope_theta"] = theta
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_base(model: nn.Module, out: Path) -> None:
    """HF folder: bf16 weights, byte tokenizer, greedy generation config ending at <|im_end|>.

    Casts ``model`` to bf16 in place, RoPE frequencies kept fp32."""
    from transformers import GenerationConfig

    from baselines.precision import cast_keeping_rope
    from tasks.byte_tokenizer import save_byte_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    cast_keeping_rope(model, torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(str(out))
    write_portable_config(out)
    save_byte_tokenizer(out)
    GenerationConfig(eos_token_id=model.config.eos_token_id, pad_token_id=model.config.pad_token_id,
                     do_sample=False, repetition_penalty=1.0).save_pretrained(str(out))


def pretrain(cfg: TinyBaseConfig, echo=None) -> dict[str, Any]:
    """Train, evaluate, save; returns the final summary (also written to ``eval.json``)."""
    validate(cfg)
    say = echo or (lambda s: print(f"[tiny_base] {s}", file=sys.stderr, flush=True))
    device = torch.device(cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    amp = None if cfg.precision == "fp32" or (cfg.precision == "auto" and device.type != "cuda") else torch.bfloat16
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(cfg)
    if cfg.init_from is not None:
        load_init(model, cfg)
        say(f"initialised from {cfg.init_from}")
    model = model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    say(f"Qwen2 tiny base: {n_params:,} parameters, rope_theta {rope_theta_of(model.config):g}, device {device}, "
        f"autocast {amp}")
    (out / "pretrain_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    fwd = torch.compile(model) if cfg.compile else model
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=tuple(cfg.betas),
                            **({"fused": True} if device.type == "cuda" else {}))
    data = PretrainBatches(cfg)
    if cfg.num_workers > 0:
        stream = iter(torch.utils.data.DataLoader(data, batch_size=None, sampler=range(cfg.steps),
                                                  num_workers=cfg.num_workers, collate_fn=_identity,
                                                  prefetch_factor=4, pin_memory=device.type == "cuda"))
    else:
        stream = (data[s] for s in range(cfg.steps))
    items = eval_items(cfg.eval_tasks, cfg.eval_lengths, cfg.eval_samples, cfg.seed)
    log = (out / "train_log.jsonl").open("w")
    cast = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    t_start, t_log, tokens_log, tokens_total = time.time(), time.time(), 0, 0
    accuracy: dict[str, float] = {}
    stop_reason = "steps"
    step = 0
    model.train()
    for step in range(cfg.steps):
        ids, tgt, w = next(stream)
        ids, tgt, w = ids.to(device, non_blocking=True), tgt.to(device, non_blocking=True), w.to(device)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * _lr_factor(cfg, step, time.time() - t_start)
        with cast:
            logits = fwd(input_ids=ids, use_cache=False).logits
        ce = F.cross_entropy(logits.float().flatten(0, 1), tgt.flatten(), reduction="none", ignore_index=-100)
        loss = (ce * w.flatten()).sum() / w.sum().clamp_min(1.0)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens_log += ids.numel()
        tokens_total += ids.numel()
        last = step + 1 == cfg.steps
        if (step + 1) % cfg.log_every == 0 or last:
            loss_v = float(loss.detach())
            dt = time.time() - t_log
            row = {"step": step + 1, "loss": loss_v, "lr": opt.param_groups[0]["lr"], "grad_norm": float(gnorm),
                   "seq_len": ids.shape[1], "tokens_per_s": tokens_log / max(dt, 1e-9),
                   "tokens": tokens_total, "elapsed_s": time.time() - t_start}
            log.write(json.dumps(row) + "\n")
            log.flush()
            say(f"step {step + 1}/{cfg.steps} loss {loss_v:.4f} L {ids.shape[1]} tok/s {row['tokens_per_s']:.0f}")
            t_log, tokens_log = time.time(), 0
        over_time = cfg.time_budget_s is not None and time.time() - t_start > cfg.time_budget_s
        if (step + 1) % cfg.eval_every == 0 or last or over_time:
            answer_nll: dict[str, float] = {}
            accuracy = evaluate(model, items, cfg.eval_batch, device, amp, data.pad, nll=answer_nll)
            log.write(json.dumps({"step": step + 1, "eval": accuracy, "answer_nll": answer_nll,
                                  "elapsed_s": time.time() - t_start}) + "\n")
            log.flush()
            say(f"eval at step {step + 1}: {accuracy} answer nll {answer_nll}")
            if accuracy and min(accuracy.values()) >= cfg.target_accuracy:
                stop_reason = "target_accuracy"
                break
        if over_time:
            stop_reason = "time_budget"
            break
    train_s = time.time() - t_start
    summary: dict[str, Any] = {
        "steps_done": step + 1, "stop_reason": stop_reason, "train_s": train_s, "tokens": tokens_total,
        "tokens_per_s": tokens_total / max(train_s, 1e-9), "parameters": n_params,
        "rope_theta": rope_theta_of(model.config), "accuracy": accuracy, "target_accuracy": cfg.target_accuracy,
        "stationary_rotary_pairs": {str(n): stationary_pairs(cfg.rope_theta, cfg.head_dim, n)
                                    for n in (max(cfg.seq_lens), 8 * max(cfg.seq_lens))},
    }
    drawn = max(data.lengths_at(step)[0])
    if drawn < max(cfg.seq_lens):  # the length warm-up follows steps, not the clock: a time budget can cut it
        summary["longest_seq_len_drawn"] = drawn
        say(f"warning: stopped inside the length warm-up, so rows never exceeded {drawn} tokens (seq_lens up to "
            f"{max(cfg.seq_lens)}); length_warmup spans {cfg.length_warmup} x steps={cfg.steps} updates, so set "
            "steps to what the time budget allows")
    if cfg.final_eval_lengths:
        extra = eval_items(cfg.eval_tasks, cfg.final_eval_lengths, max(4, cfg.eval_samples // 2), cfg.seed)
        summary["accuracy_longer"] = evaluate(model, extra, max(1, cfg.eval_batch // 4), device, amp, data.pad)
        say(f"full attention beyond the training length: {summary['accuracy_longer']}")
    log.close()
    save_base(model, out)
    (out / "eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    say(f"saved {out} ({stop_reason} after {step + 1} steps, {train_s:.0f}s)")
    return summary


def load_tiny_config(path: str | None, overrides: list[str]) -> TinyBaseConfig:
    data: dict[str, Any] = {}
    if path:
        data = json.loads(Path(path).read_text())
        data.pop("//", None)
    data = apply_overrides(data, [parse_override(o) for o in overrides])
    return validate(from_dict(TinyBaseConfig, data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ahn.train.tiny_base", description="pretrain the tiny base LM")
    ap.add_argument("--config", help="JSON file of TinyBaseConfig fields")
    ap.add_argument("overrides", nargs="*", help="key=value, e.g. steps=200 seq_lens=[256,512]")
    ap.add_argument("--output-dir")
    args = ap.parse_intermixed_args(argv)
    overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    try:
        cfg = load_tiny_config(args.config, overrides)
    except ConfigError as e:
        print(f"tiny_base: error: {e}", file=sys.stderr)
        return 2
    pretrain(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
