"""The memory methods as an lm-evaluation-harness model, so lm-eval's long-context tasks run on any method.

Why a custom LM rather than lm-eval's ``hf`` model: ``HFLM`` left-truncates every prompt to
``max_length - max_gen_toks`` (the leading instruction is lost) and runs the stock attention. Here each request
is truncated the benchmarks' way (``middle`` by default, from :mod:`tasks.prompting`), then fed through the
streaming engine with the memory method attached, so the score measures the method, not lm-eval's truncation.

Model arguments (``--model_args`` / ``model_args=``)::

    preset=tiny-ahn-gdn                                   # a named preset (pretrained=tiny-ahn-gdn too), or
    pretrained=<folder or hub id>,method=swa,sinks=4,window=64,ahn_checkpoint=<folder or id>
    chunk=16384           # prefill chunk (default: the preset's)
    max_length=32768      # prompt + generation budget (default: the model's max_position_embeddings)
    truncation=middle     # middle | left | none  (middle_style=lveval | infinitebench)
    device=cpu,dtype=float32

Decisions, explicit:

* **Greedy only.** ``do_sample=True``, ``num_beams > 1``, or a temperature > 0 without ``do_sample: false``
  raise ``ValueError``. ``do_sample: false`` with a temperature (LongBench's YAMLs say ``temperature: 1``) is
  greedy, as in ``transformers``. ``top_p``/``top_k`` are ignored under greedy decoding.
* **Budget.** A prompt longer than ``max_length - max_gen_toks`` tokens (``max_length - len(continuation)`` for
  loglikelihood) is cut to exactly that, so prompt + generation fit ``max_length`` as with lm-eval's own
  models; the cut is the benchmark's (LV-Eval halves by default; ``middle_style=infinitebench``). The
  settings are recorded in ``results["config"]`` (``get_model_info``).
* **Truncation happens before the chat template**, on the last user message (the official pipelines' order:
  `docs/BENCHMARKS.md` A4, B4). lm-eval renders the template before the model sees the request, so
  :meth:`apply_chat_template` remembers each rendered prompt's messages and the request is re-rendered after
  truncating. The template's own tokens come on top of the budget, as in :func:`tasks.prompting.prepare`.
* **Loglikelihoods** stream through the method as generation does (chunked prefill with the method's memory),
  keeping logits only for the continuation. ``loglikelihood_rolling`` feeds the whole document through the
  method in chunks (no lm-eval rolling windows: bounded memory is the method's job).
* One request at a time (batch 1; ``batch_size`` is accepted and ignored). Generation stops at EOS, at
  ``max_gen_toks``, or as soon as the text contains an ``until`` string; the text is cut there.
* **Truncation is counted**: each request kind logs a warning with how many prompts were cut, and
  ``results["config"]["truncated_prompts"]`` carries the counts (with ``requests`` and ``generated_tokens``).
* **Results are named after the preset.** lm-eval names the results folder of ``--output_path`` after a
  ``pretrained=`` model argument (else a random id). ``pretrained=`` accepts a preset name too, and the command
  line below passes ``preset=NAME`` on as ``pretrained=NAME``, so two presets' results land in two folders
  named after them. With ``pretrained=<folder>,method=…`` they are named after the folder: give each method
  its own ``--output_path``.

* **Device.** ``device=`` in the model arguments wins over lm-eval's ``--device`` (the command line passes it on
  as ``--device`` too, so lm-eval's own ``results["config"]["device"]`` says the same); the device the model
  really ran on (``cuda:0`` falls back to ``cpu`` without a GPU) is ``results["config"]["harness_device"]``.
* **Include paths are code.** A task folder given with ``--include_path`` (or ``include_path=``) may hold YAML
  ``!function`` hooks, which import and run the folder's Python files. The command line refuses
  ``--include_path`` unless ``--allow-include-path-code`` is given too; :func:`evaluate` logs a warning naming the
  folder. Pass only folders whose code you would run yourself.

Use from Python with :func:`evaluate`, or on the command line, where the model must be registered in the
lm-eval process first: ``python -m harness.lm_eval_bridge run --model ahn-harness --model_args preset=... --tasks
...`` (the arguments are lm-eval's own). lm-eval's RULER needs a tokenizer: with ``preset=`` pass
``--metadata '{"tokenizer": "<folder>"}'``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

MODEL_NAME = "ahn-harness"
DEFAULT_MAX_GEN_TOKS = 256
_IGNORED_UNDER_GREEDY = {"temperature", "top_p", "top_k", "do_sample", "min_p", "typical_p", "seed"}
_NONE_LIKE = (None, "", "none", "None")

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------
# lm-eval access (optional extra)
# ---------------------------------------------------------------------------------------------------------------
def _lm_eval_api() -> tuple[type, Any]:
    """The ``LM`` base class and ``register_model``, with an actionable error when lm-eval is absent."""
    try:
        from lm_eval.api.model import LM
        from lm_eval.api.registry import register_model
    except ImportError as exc:
        raise ImportError(
            "the lm-eval bridge needs lm-evaluation-harness >= 0.4.9, which is not installed: "
            "pip install 'ahn-harness[lmeval]'  (or: pip install 'lm-eval>=0.4.9')"
        ) from exc
    return LM, register_model


def _model_table() -> Any:
    """lm-eval's model registry: a plain dict in 0.4.9, a lazy ``Registry`` in 0.4.10+ (both support ``in``)."""
    from lm_eval.api import registry

    table = getattr(registry, "model_registry", None)
    return table if table is not None else registry.MODEL_REGISTRY


def _register(cls: type, register_model: Any) -> None:
    """``@register_model(MODEL_NAME)`` once per process, whichever registry flavour lm-eval has."""
    # 0.4.10+ fills its registry with the built-in models only while it is empty; populate it first, or
    # registering ours would hide "hf" & co. from `get_model` in this process.
    with contextlib.suppress(ImportError):
        import lm_eval.models  # noqa: F401
    table = _model_table()
    if MODEL_NAME in table:
        existing = table[MODEL_NAME]
        same = getattr(existing, "__module__", None) == cls.__module__ and getattr(
            existing, "__qualname__", None) == cls.__qualname__
        if not same:
            raise RuntimeError(f"lm-eval model name {MODEL_NAME!r} is already taken by {existing!r}")
        if isinstance(table, dict):  # a reloaded module: point the name at the fresh class
            table[MODEL_NAME] = cls
        return  # a Registry keeps the equivalent class of the first import
    register_model(MODEL_NAME)(cls)


@functools.cache
def lm_class() -> type:
    """The ``lm_eval.api.model.LM`` subclass, built and registered as ``"ahn-harness"`` on first use."""
    lm_base, register_model = _lm_eval_api()
    cls = type("HarnessLM", (HarnessLMCore, lm_base), {
        "__module__": __name__, "__doc__": HarnessLMCore.__doc__,
        "create_from_arg_string": classmethod(_create_from_args),
        "create_from_arg_obj": classmethod(_create_from_args),
    })
    _register(cls, register_model)
    return cls


def _create_from_args(cls: type, model_args: str | dict[str, Any], additional_config: dict | None = None) -> Any:
    """lm-eval's constructor hook, with the model arguments winning over its ``additional_config`` (``device``,
    ``batch_size`` from its own flags): lm-eval's ``cls(**args, **additional)`` fails on ``device=`` given twice."""
    args = _parse_model_args(model_args)
    extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k not in args}
    return cls(**args, **extra)


def register() -> type:
    """Make ``--model ahn-harness`` known to lm-eval in this process; returns the class."""
    return lm_class()


def __getattr__(name: str) -> Any:
    # `from harness.lm_eval_bridge import HarnessLM` without importing lm-eval at module import time
    if name == "HarnessLM":
        return lm_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers (no lm-eval, no torch)
# ---------------------------------------------------------------------------------------------------------------
def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """``text`` up to (excluding) the earliest occurrence of any non-empty stop string."""
    cut = len(text)
    for stop in until:
        if stop:
            pos = text.find(stop)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut]


def greedy_settings(gen_kwargs: dict[str, Any] | None) -> tuple[list[str], int, float | None]:
    """``(until, max_gen_toks, repetition_penalty)`` from lm-eval's ``gen_kwargs``; refuses sampling."""
    kwargs = dict(gen_kwargs or {})
    do_sample = kwargs.get("do_sample")
    temperature = kwargs.get("temperature")
    if do_sample is True or str(do_sample).lower() == "true":
        raise ValueError(
            f"{MODEL_NAME} decodes greedily only; the task asks for sampling (do_sample=True). "
            "Override with --gen_kwargs do_sample=False"
        )
    if do_sample in (None, "") and temperature not in (None, "") and float(temperature) > 0:
        raise ValueError(
            f"{MODEL_NAME} decodes greedily only; the task asks for temperature={temperature} without "
            "do_sample=False. Override with --gen_kwargs temperature=0 (or do_sample=False)"
        )
    if int(kwargs.get("num_beams", 1) or 1) > 1:
        raise ValueError(f"{MODEL_NAME} decodes greedily only; beam search (num_beams>1) is not supported")
    until = kwargs.get("until") or []
    if isinstance(until, str):
        until = [until]
    if not isinstance(until, (list, tuple)) or not all(isinstance(s, str) for s in until):
        raise ValueError(f"gen_kwargs 'until' must be a string or a list of strings, got {until!r}")
    max_gen = kwargs.get("max_gen_toks", kwargs.get("max_new_tokens", DEFAULT_MAX_GEN_TOKS))
    if not isinstance(max_gen, int) or isinstance(max_gen, bool) or max_gen < 1:
        raise ValueError(f"max_gen_toks must be an integer >= 1, got {max_gen!r}")
    penalty = kwargs.get("repetition_penalty")
    unknown = set(kwargs) - _IGNORED_UNDER_GREEDY - {"until", "max_gen_toks", "max_new_tokens",
                                                     "repetition_penalty", "num_beams"}
    if unknown:
        log.warning("%s ignores generation arguments %s (greedy decoding)", MODEL_NAME, sorted(unknown))
    return list(until), max_gen, None if penalty is None else float(penalty)


def _prompt_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------
class HarnessLMCore:
    """A memory method over a causal LM, answering lm-eval requests (generate_until, loglikelihood[_rolling]).

    The lm-eval base class is mixed in by :func:`lm_class`, so this module imports without lm-eval.
    """

    def __init__(
        self,
        preset: str | None = None,
        pretrained: str | None = None,
        method: str | None = None,
        sinks: int | None = None,
        window: int | None = None,
        ahn_checkpoint: str | None = None,
        chunk: int | None = None,
        max_length: int | None = None,
        truncation: str | None = "middle",
        middle_style: str = "lveval",
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int | str | None = None,
        max_batch_size: int | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__()  # lm_eval LM: rank 0 of 1, cache hook
        if unknown:
            raise ValueError(
                f"{MODEL_NAME}: unknown model_args {sorted(unknown)}; valid: preset, pretrained, method, sinks, "
                "window, ahn_checkpoint, chunk, max_length, truncation, middle_style, device, dtype"
            )
        if (preset in _NONE_LIKE) == (pretrained in _NONE_LIKE):
            raise ValueError(f"{MODEL_NAME}: pass exactly one of preset=<name> or pretrained=<folder or hub id>")
        if preset not in _NONE_LIKE and method not in _NONE_LIKE:
            raise ValueError(f"{MODEL_NAME}: preset={preset} fixes the method; use pretrained=...,method=... instead")
        truncation = "none" if truncation in _NONE_LIKE else str(truncation)  # lm-eval parses "none" as None
        if truncation not in ("middle", "left", "none"):
            raise ValueError(f"{MODEL_NAME}: truncation must be middle, left or none, got {truncation!r}")
        if middle_style not in ("lveval", "infinitebench"):
            raise ValueError(f"{MODEL_NAME}: middle_style must be lveval or infinitebench, got {middle_style!r}")
        if batch_size not in (None, 1, "1"):
            log.warning("%s runs one request at a time; batch_size=%s is ignored", MODEL_NAME, batch_size)

        from harness.loading import loaded
        from harness.presets import resolve_model

        name = str(preset if preset not in _NONE_LIKE else pretrained)
        resolved = resolve_model(name, method=None if method in _NONE_LIKE else str(method),
                                 sinks=_opt_int(sinks, "sinks"), window=_opt_int(window, "window"),
                                 ahn_checkpoint=None if ahn_checkpoint in _NONE_LIKE else str(ahn_checkpoint),
                                 chunk_size=_opt_int(chunk, "chunk"))
        self._stack = contextlib.ExitStack()
        self.loaded = self._stack.enter_context(
            loaded(resolved, device=_usable_device(device),
                   dtype=None if dtype in _NONE_LIKE else str(dtype)))
        self.preset = resolved
        self.tokenizer = self.loaded.tokenizer
        self.model = self.loaded.model
        self.method = self.loaded.method
        self._device = self.loaded.device
        self.chunk_size = resolved.chunk_size
        default_len = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.max_length = _opt_int(max_length, "max_length") or int(default_len)
        self.truncation_kind = truncation
        self.middle_style = middle_style
        self._chats: dict[str, tuple[list[dict[str, str]], bool]] = {}
        self.request_counts: Counter[str] = Counter()
        self.truncated: Counter[str] = Counter()  # prompts cut to the budget, per request kind
        self.generated_tokens = 0

    # ---- lifecycle -----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Detach the method (the model is as loaded again)."""
        self._stack.close()

    def __enter__(self) -> HarnessLMCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def truncated_count(self) -> int:
        """Prompts cut to the budget, all request kinds together."""
        return sum(self.truncated.values())

    # ---- provenance (lm-eval copies this into results["config"]) ------------------------------------------
    def get_model_info(self) -> dict[str, Any]:
        """Settings and counts; lm-eval calls this after the requests ran, so the counts are final."""
        return {
            "harness_preset": self.preset.to_dict(),
            "requests": dict(self.request_counts),
            "truncated_prompts": {"total": self.truncated_count, **self.truncated},
            "generated_tokens": self.generated_tokens,
            "memory_method": self.method.describe(),
            "truncation": {"kind": self.truncation_kind, "middle_style": self.middle_style,
                           "max_length": self.max_length,
                           "budget": "max_length - max_gen_toks (continuation tokens for loglikelihood)",
                           "applied_to": "the prompt before the chat template"},
            "decoding": "greedy",
            "chunk_size": self.chunk_size,
            "dtype": str(self.loaded.dtype),
            "harness_device": str(self._device),  # lm-eval overwrites "device" with its --device afterwards
        }

    # ---- chat template (lm-eval's --apply_chat_template) --------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "tokenizer")).replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        if chat_template is False or chat_template is None:
            return None
        template = getattr(self.tokenizer, "chat_template", None)
        if isinstance(template, dict):
            key = chat_template if isinstance(chat_template, str) else "default"
            if key not in template:
                raise ValueError(f"tokenizer has no chat template named {key!r}; it has {sorted(template)}")
            return template[key]
        if not template:
            raise ValueError(f"{MODEL_NAME}: the tokenizer has no chat template; run without --apply_chat_template")
        return template

    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        out = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )
        if not isinstance(out, str):
            raise TypeError(f"apply_chat_template(tokenize=False) returned {type(out).__name__}, expected str")
        return out

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Render, and remember the messages so the request can be truncated before templating."""
        messages = [dict(m) for m in chat_history]
        text = self._render(messages, add_generation_prompt)
        self._chats[_prompt_key(text)] = (messages, add_generation_prompt)
        return text

    # ---- prompts -------------------------------------------------------------------------------------------
    def _truncation(self, reserve: int) -> Any:
        from tasks.prompting import NO_TRUNCATION, Truncation

        if self.truncation_kind == "none":
            return NO_TRUNCATION
        if self.max_length - reserve <= 0:
            raise ValueError(f"max_length={self.max_length} leaves no room for the prompt after reserving "
                             f"{reserve} tokens (generation or continuation); raise max_length")
        # cut whenever longer than the budget, so prompt + generation always fit max_length (lm-eval's
        # guarantee); the cut itself is the benchmark's arithmetic (tasks.prompting)
        return Truncation(self.truncation_kind, self.max_length - reserve, 0, self.middle_style)

    def prompt_ids(self, context: str, reserve: int, kind: str = "generate_until") -> list[int]:
        """Token ids fed for ``context``, truncated to ``max_length - reserve`` the configured way."""
        from tasks.prompting import encode, truncate_text

        truncation = self._truncation(reserve)
        chat = self._chats.get(_prompt_key(context))
        if chat is None:
            text, _, truncated = truncate_text(self.tokenizer, context, truncation)
            ids = encode(self.tokenizer, text)
        else:
            messages, add_generation_prompt = chat
            users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
            truncated = False
            if users:
                messages = copy.deepcopy(messages)
                last = messages[users[-1]]
                last["content"], _, truncated = truncate_text(self.tokenizer, last["content"], truncation)
            ids = encode(self.tokenizer, self._render(messages, add_generation_prompt), add_special_tokens=False)
        self.truncated[kind] += int(truncated)
        if not ids:
            ids = [self._prefix_token_id()]
        return ids

    def _prefix_token_id(self) -> int:
        """What an empty context is conditioned on: BOS, else EOS (lm-eval's convention)."""
        for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
            tok = getattr(self.tokenizer, attr, None)
            if tok is not None:
                return int(tok)
        raise ValueError(f"{MODEL_NAME}: the tokenizer has no BOS/EOS/PAD token to condition an empty context on")

    # ---- generate_until ------------------------------------------------------------------------------------
    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        import torch
        from tqdm import tqdm

        from baselines.engine import generate

        out: list[str] = []
        for req in tqdm(requests, desc=f"{MODEL_NAME} generate_until", disable=_bar_disable(disable_tqdm, self.rank)):
            context, gen_kwargs = req.args[0], req.args[1]
            until, max_gen, penalty = greedy_settings(gen_kwargs)
            ids = self.prompt_ids(context, reserve=max_gen, kind="generate_until")
            input_ids = torch.tensor([ids], dtype=torch.long, device=self._device)
            result = generate(self.model, self.method, input_ids, max_new_tokens=max_gen,
                              chunk_size=self.chunk_size, repetition_penalty=penalty, stop=self._stopper(until))
            self.generated_tokens += len(result.tokens[0])
            text = cut_at_stop(self.tokenizer.decode(result.tokens[0], skip_special_tokens=True), until)
            out.append(text)
            self.request_counts["generate_until"] += 1
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        self._report_truncation("generate_until")
        return out

    def _stopper(self, until: list[str]) -> Any:
        """The engine's stop test for ``until``: the text generated so far contains a stop string."""
        stops = [s for s in until if s]
        if not stops:
            return None

        def stop(tokens: list[int]) -> bool:
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            return any(s in text for s in stops)

        return stop

    def _report_truncation(self, kind: str) -> None:
        """Log how many prompts of this request kind were cut to the budget (lm-eval's results carry it too)."""
        cut, total = self.truncated[kind], self.request_counts[kind]
        if cut:
            log.warning("%s: %d of %d %s prompt(s) were truncated (%s) to max_length=%d minus the generation or "
                        "continuation budget", MODEL_NAME, cut, total, kind, self.truncation_kind, self.max_length)
        else:
            log.info("%s: none of %d %s prompt(s) needed truncation", MODEL_NAME, total, kind)

    # ---- loglikelihoods --------------------------------------------------------------------------------------
    def _score(self, prefix: list[int], targets: list[int]) -> tuple[float, bool]:
        """Sum of log p(targets | prefix) and whether each target is the argmax, streamed through the method.

        The sequence ``prefix + targets[:-1]`` is fed in chunks against one memory cache (the engine's
        prefill); logits are kept only for the positions that predict a target.
        """
        import torch

        from baselines.interface import forward_context

        if not targets:
            return 0.0, True
        ids = torch.tensor([prefix + targets[:-1]], dtype=torch.long, device=self._device)
        target = torch.tensor(targets, dtype=torch.long, device=self._device)
        need_from = len(prefix) - 1  # first position whose logits predict a target
        cache = self.method.new_cache(self.model)
        total, greedy, done = 0.0, True, 0
        step = max(1, min(self.chunk_size, 1024))  # bound the [chunk, vocab] logits held at once
        with torch.no_grad():
            for begin in range(0, ids.shape[1], step):
                end = min(begin + step, ids.shape[1])
                keep = max(0, end - max(begin, need_from))
                chunk = ids[:, begin:end]
                positions = torch.arange(begin, end, device=self._device)[None]
                with forward_context(cache, end - begin):
                    if keep == 0:  # logits_to_keep=0 would mean "all": skip the head instead
                        self.model.base_model(input_ids=chunk, position_ids=positions, use_cache=False)
                        continue
                    logits = self.model(input_ids=chunk, position_ids=positions, use_cache=False,
                                        logits_to_keep=keep).logits[0].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                want = target[done:done + keep]
                total += float(logprobs.gather(1, want[:, None]).sum())
                greedy = greedy and bool((logprobs.argmax(-1) == want).all())
                done += keep
        return total, greedy

    def _pair_ids(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Context and continuation ids, the context truncated to leave room for the continuation.

        Trailing spaces of the context move to the continuation and the pair is tokenised together, so a
        merge across the boundary stays with the continuation (lm-eval's convention).
        """
        from tasks.prompting import encode, truncate_text

        stripped = context.rstrip(" ")
        continuation = context[len(stripped):] + continuation
        cont_alone = encode(self.tokenizer, continuation, add_special_tokens=False)
        if not stripped:
            return [self._prefix_token_id()], cont_alone
        if self.truncation_kind != "none":
            stripped, _, truncated = truncate_text(self.tokenizer, stripped, self._truncation(len(cont_alone)))
            self.truncated["loglikelihood"] += int(truncated)
        context_ids = encode(self.tokenizer, stripped)
        whole = encode(self.tokenizer, stripped + continuation)
        if len(whole) > len(context_ids) and whole[:len(context_ids)] == context_ids:
            return context_ids, whole[len(context_ids):]
        return context_ids, cont_alone

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        from tqdm import tqdm

        out: list[tuple[float, bool]] = []
        for req in tqdm(requests, desc=f"{MODEL_NAME} loglikelihood", disable=_bar_disable(disable_tqdm, self.rank)):
            context, continuation = req.args[0], req.args[1]
            result = self._score(*self._pair_ids(context, continuation))
            out.append(result)
            self.request_counts["loglikelihood"] += 1
            self.cache_hook.add_partial("loglikelihood", (context, continuation), result)
        self._report_truncation("loglikelihood")
        return out

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Whole-document log-likelihood, conditioned on BOS/EOS, never truncated: the method bounds memory."""
        from tqdm import tqdm

        from tasks.prompting import encode

        out: list[float] = []
        for req in tqdm(requests, desc=f"{MODEL_NAME} loglikelihood_rolling",
                        disable=_bar_disable(disable_tqdm, self.rank)):
            (text,) = req.args[:1]
            ids = encode(self.tokenizer, text, add_special_tokens=False)
            value, _ = self._score([self._prefix_token_id()], ids)
            out.append(value)
            self.request_counts["loglikelihood_rolling"] += 1
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), value)
        return out


def _bar_disable(disable_tqdm: bool, rank: int) -> bool | None:
    """tqdm's ``disable``: off when lm-eval asks or on other ranks, else tqdm's rule (off when not a TTY)."""
    return True if disable_tqdm or rank != 0 else None


def _usable_device(device: Any) -> str | None:
    """The requested device; lm-eval's CLI asks for ``cuda:0`` by default, so without CUDA fall back to CPU."""
    if device in _NONE_LIKE:
        return None
    device = str(device)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            log.warning("%s: device %s requested but CUDA is not available; using the CPU", MODEL_NAME, device)
            return "cpu"
    return device


def _opt_int(value: Any, name: str) -> int | None:
    if value in _NONE_LIKE:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{MODEL_NAME}: {name} must be an integer, got {value!r}") from None


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------
def name_results_by_preset(model_args: str | dict[str, Any]) -> str | dict[str, Any]:
    """``preset=NAME`` passed on as ``pretrained=NAME``, the argument lm-eval names its results folder after."""
    if isinstance(model_args, dict):
        if model_args.get("preset") not in _NONE_LIKE and model_args.get("pretrained") in _NONE_LIKE:
            args = {k: v for k, v in model_args.items() if k not in ("preset", "pretrained")}
            return {"pretrained": model_args["preset"], **args}
        return model_args
    parts = [p for p in str(model_args).split(",") if p.strip()]
    keys = [p.split("=", 1)[0].strip() for p in parts]
    if "preset" in keys and "pretrained" not in keys:
        parts = [("pretrained=" + p.split("=", 1)[1]) if k == "preset" else p for p, k in zip(parts, keys)]
    return ",".join(parts)


def _parse_model_args(model_args: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(model_args, dict):
        return dict(model_args)
    from lm_eval.utils import simple_parse_args_string

    return simple_parse_args_string(model_args)


def evaluate(
    model_args: str | dict[str, Any],
    tasks: list[str],
    include_path: str | list[str] | None = None,
    limit: int | float | None = None,
    **simple_evaluate_kwargs: Any,
) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` on a :class:`HarnessLM` built from ``model_args``; the model is detached
    afterwards. Extra keyword arguments go to ``simple_evaluate`` (e.g. ``log_samples``, ``apply_chat_template``).
    """
    _lm_eval_api()
    import inspect

    import lm_eval
    from lm_eval.tasks import TaskManager

    model_args = name_results_by_preset(model_args)
    args = _parse_model_args(model_args)
    if include_path is not None:
        log.warning("include_path %s: its task YAMLs may run the folder's Python files (!function hooks) as code",
                    include_path)
    lm = lm_class()(**args)
    try:
        if "task_manager" not in simple_evaluate_kwargs:
            tm_kwargs: dict[str, Any] = {"include_path": include_path}
            if "metadata" in inspect.signature(TaskManager).parameters:
                tm_kwargs["metadata"] = args | (simple_evaluate_kwargs.get("metadata") or {})
            simple_evaluate_kwargs["task_manager"] = TaskManager(**tm_kwargs)
        elif include_path is not None:
            raise ValueError("pass include_path or task_manager, not both")
        results = lm_eval.simple_evaluate(model=lm, model_args=model_args, tasks=list(tasks), limit=limit,
                                          **simple_evaluate_kwargs)
    finally:
        lm.close()
    return results


def main(argv: list[str] | None = None) -> None:
    """lm-eval's own command line, with ``--model ahn-harness`` registered first."""
    register()
    from lm_eval.__main__ import cli_evaluate

    args = list(sys.argv[1:] if argv is None else argv)
    args = _check_include_path(args)
    args = _device_flag(args)
    for i, arg in enumerate(args):  # results named after the preset, not a random id (see the module notes)
        if arg == "--model_args" and i + 1 < len(args):
            args[i + 1] = _cli_model_args(args[i + 1])
        elif arg.startswith("--model_args="):
            args[i] = "--model_args=" + _cli_model_args(arg.split("=", 1)[1])
    saved, sys.argv = sys.argv, [sys.argv[0], *args]  # lm-eval reads its arguments from sys.argv
    try:
        cli_evaluate()
    except ValueError as exc:
        if "Tasks not found" in str(exc):  # lm-eval names the bad task; say where the valid ones are listed
            raise ValueError(f"{exc} (the valid names: python -m harness lm-eval ls tasks)") from exc
        raise
    finally:
        sys.argv = saved  # an in-process caller's own command line stays as it was


ALLOW_CODE_FLAG = "--allow-include-path-code"


def _check_include_path(args: list[str]) -> list[str]:
    """Refuse ``--include_path`` without ``--allow-include-path-code`` (its YAML hooks run the folder's Python
    files); return the arguments without the flag, which lm-eval does not know."""
    allowed = ALLOW_CODE_FLAG in args
    args = [a for a in args if a != ALLOW_CODE_FLAG]
    paths = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--include_path"]
    paths += [a.split("=", 1)[1] for a in args if a.startswith("--include_path=")]
    if paths and not allowed:
        raise ValueError(f"--include_path {paths[0]}: task folders can run code (a YAML !function hook imports "
                         f"the folder's Python files); add {ALLOW_CODE_FLAG} to run the code in "
                         f"{', '.join(paths)}")
    if paths:
        log.warning("running task code from --include_path %s (%s)", ", ".join(paths), ALLOW_CODE_FLAG)
    return args


def _device_flag(args: list[str]) -> list[str]:
    """Pass a ``device=`` model argument on as lm-eval's ``--device`` so that both record the same device;
    refuse the two when they differ."""
    text = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--model_args"), None)
    text = text or next((a.split("=", 1)[1] for a in args if a.startswith("--model_args=")), None)
    if text is None:
        return args
    try:
        device = _parse_model_args(_cli_json_or_text(text)).get("device")
    except Exception:  # noqa: BLE001 (a malformed value is lm-eval's to report)
        return args
    if device in _NONE_LIKE:
        return args
    given = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--device"), None)
    given = given or next((a.split("=", 1)[1] for a in args if a.startswith("--device=")), None)
    if given is None:
        return [*args, "--device", str(device)]
    if str(given) != str(device):
        raise ValueError(f"--device {given} and model argument device={device} differ; give one of them")
    return args


def _cli_json_or_text(text: str) -> str | dict[str, Any]:
    import json

    stripped = text.strip()
    return json.loads(stripped) if stripped.startswith("{") else text


def _cli_model_args(text: str) -> str:
    """``name_results_by_preset`` on a command-line value, key=value or JSON."""
    import json

    stripped = text.strip()
    if stripped.startswith("{"):
        return json.dumps(name_results_by_preset(json.loads(stripped)))
    return str(name_results_by_preset(text))


if __name__ == "__main__":
    main()
