"""Training sequences: the paper's ChatQA2 long SFT data, local JSONL (chats or plain text), the synthetic corpus.

Every source yields examples ``{"input_ids": [...], "labels": [...]}`` with ``labels[t] = -100`` where no loss
is taken (chat: everything but the assistant's turns; plain text: nothing but padding). Sources are indexable,
and micro-batch ``g`` of a run is a pure function of ``(seed, g)``: a resumed run continues with exactly the
batch an uninterrupted run would have seen, whatever the number of data workers.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

IGNORE = -100
CHATQA2_DATASET = "Seerkfang/ChatQA2-Long-SFT-data-long_sft_train_filtered"

Example = dict[str, list[int]]
_ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                 "system": "system", "bot": "assistant", "model": "assistant"}


class DataError(ValueError):
    """Training data that cannot be used: missing fields, unreachable dataset, nothing left after filtering."""


# ------------------------------------------------------------------------------------------------------
# chats


def normalise_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """ShareGPT ``[{role, content}]`` or ``[{from, value}]`` -> ``[{role, content}]`` with roles user/assistant/system."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DataError(f"{where}: messages[{i}] is not an object")
        role = m.get("role", m.get("from"))
        content = m.get("content", m.get("value"))
        if role is None or content is None:
            raise DataError(f"{where}: messages[{i}] lacks the needed fields 'role' and 'content' (or ShareGPT "
                            f"'from' and 'value'); found {sorted(m)}")
        r = _ROLE_ALIASES.get(str(role).lower())
        if r is None:
            raise DataError(f"{where}: messages[{i}] has unknown role {role!r}; valid: {sorted(_ROLE_ALIASES)}")
        out.append({"role": r, "content": str(content)})
    return out


def _encode(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def encode_chat(messages: list[dict[str, str]], tokenizer: Any, where: str = "chat") -> Example:
    """Token ids of the chat under the tokenizer's template; labels only on the assistant turns.

    The rendering is split at turn boundaries (the text up to a generation prompt, then the assistant's
    turn as the template renders it, its end-of-turn tokens included), each piece tokenised on its own.
    This needs a template whose renderings of successive prefixes extend each other, as Qwen's do; any other
    template fails with a clear error instead of mislabelling.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{where}: the tokenizer has no chat template; chats need one (use plain 'text' records "
                        f"for a base model without a template)")
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        if i == 0:
            raise DataError(f"{where}: the chat starts with an assistant turn (nothing to condition on)")
        prefix = _render(tokenizer, messages[:i], True)
        full = _render(tokenizer, messages[: i + 1], False)
        if not prefix.startswith(done) or not full.startswith(prefix):
            raise DataError(f"{where}: the chat template does not render successive turns as extensions of each "
                            f"other, so response tokens cannot be located")
        p_ids, r_ids = _encode(tokenizer, prefix[len(done):]), _encode(tokenizer, full[len(prefix):])
        ids += p_ids + r_ids
        labels += [IGNORE] * len(p_ids) + r_ids
        done = full
    if not done:
        raise DataError(f"{where}: the chat has no assistant turn, so there is nothing to learn from")
    tail = _render(tokenizer, messages, False)
    if len(tail) > len(done) and tail.startswith(done):
        t_ids = _encode(tokenizer, tail[len(done):])
        ids += t_ids
        labels += [IGNORE] * len(t_ids)
    return {"input_ids": ids, "labels": labels}


def encode_text(text: str, tokenizer: Any) -> Example:
    ids = _encode(tokenizer, text)
    return {"input_ids": ids, "labels": list(ids)}


def truncate(ex: Example, cutoff_len: int, side: str = "right") -> Example:
    """Keep ``cutoff_len`` tokens: the first ones (``right``: the tail is cut) or the last (``left``)."""
    if len(ex["input_ids"]) <= cutoff_len:
        return ex
    sl = slice(0, cutoff_len) if side == "right" else slice(-cutoff_len, None)
    return {"input_ids": ex["input_ids"][sl], "labels": ex["labels"][sl]}


# ------------------------------------------------------------------------------------------------------
# sources


class Source:
    """An indexable source of examples; ``size`` is None for an endless (generated) source."""

    size: int | None = None

    def get(self, index: int) -> Example:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"source": type(self).__name__, "size": self.size}


class ListSource(Source):
    def __init__(self, examples: Sequence[Example], name: str = "list") -> None:
        if not examples:
            raise DataError(f"{name}: no training examples (all filtered out?)")
        self.examples, self.name, self.size = list(examples), name, len(examples)

    def get(self, index: int) -> Example:
        return self.examples[index]

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "size": self.size}


def _keep(ex: Example, filter_len: int) -> bool:
    return len(ex["input_ids"]) > filter_len


def _objects(p: Path, limit: int | None, need: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The file's JSON objects (``tasks.jsonl``); a bad line (binary data, bad JSON, absurd nesting, an endless
    line) is a ``DataError`` naming the file and line."""
    from tasks.jsonl import JsonlError, iter_objects

    try:
        yield from iter_objects(p, limit=limit)
    except JsonlError as e:
        raise DataError(f"{e}; each line must be a JSON object with field {need}") from None
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or e})") from None


def read_jsonl(path: str | os.PathLike, tokenizer: Any, *, fmt: str = "auto", filter_len: int = 288,
               cutoff_len: int = 24576, truncation: str = "right", max_samples: int | None = None) -> ListSource:
    """A local JSON-lines file: ``{"messages": [...]}`` per line (chat SFT) or ``{"text": "..."}`` (plain text).

    A line without the needed field fails with an error naming the file, the line and the fields.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {str(p)!r} does not exist")
    need = {"chat": "'messages'", "text": "'text'", "auto": "'messages' (chat) or 'text' (plain text)"}[fmt]
    examples: list[Example] = []
    n_read = 0
    for lineno, rec in _objects(p, max_samples, need):
        n_read += 1
        where = f"{p}:{lineno}"
        if fmt in ("chat", "auto") and "messages" in rec:
            ex = encode_chat(normalise_messages(rec["messages"], where), tokenizer, where)
        elif fmt in ("text", "auto") and "text" in rec:
            if not isinstance(rec["text"], str):
                raise DataError(f"{where}: field 'text' must be a string")
            ex = encode_text(rec["text"], tokenizer)
        else:
            raise DataError(f"{where}: missing the needed field {need}; found fields {sorted(rec)}")
        if _keep(ex, filter_len):
            examples.append(truncate(ex, cutoff_len, truncation))
    if not examples:
        raise DataError(f"{p}: no example longer than filter_len={filter_len} tokens among {n_read} records")
    return ListSource(examples, name=f"jsonl:{p.name}")


def _offline() -> bool:
    flags = (os.environ.get(k, "").strip().upper() for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f in {"1", "ON", "YES", "TRUE"} for f in flags)


class HubChatSource(Source):
    """ChatQA2 long SFT (or any dataset of ShareGPT ``messages``) from the HF Hub or a local dataset folder.

    Paper recipe: the first ``max_samples`` records, chat template of the base tokenizer, labels on the
    responses only, keep samples longer than ``filter_len`` tokens, truncate at ``cutoff_len``.
    """

    def __init__(self, tokenizer: Any, path: str | None = None, split: str = "train", *, filter_len: int = 288,
                 cutoff_len: int = 24576, truncation: str = "right", max_samples: int | None = 100000,
                 num_proc: int | None = None) -> None:
        self.name = path or CHATQA2_DATASET
        raw = self._load(self.name, split)
        if "messages" not in raw.column_names:
            raise DataError(f"dataset {self.name!r} ({split}) has no 'messages' column; found {raw.column_names}")
        if max_samples is not None:
            raw = raw.select(range(min(max_samples, len(raw))))

        def tokenize(rec: dict, idx: int) -> dict:
            where = f"{self.name}[{idx}]"
            try:
                ex = encode_chat(normalise_messages(rec["messages"], where), tokenizer, where)
            except DataError:
                return {"input_ids": [], "labels": []}  # dropped by the length filter below
            return truncate(ex, cutoff_len, truncation) if _keep(ex, filter_len) else {"input_ids": [], "labels": []}

        mapped = raw.map(tokenize, with_indices=True, remove_columns=raw.column_names, num_proc=num_proc,
                         desc="tokenising chats")
        self.data = mapped.filter(lambda r: len(r["input_ids"]) > 0, num_proc=num_proc)
        self.size = len(self.data)
        if self.size == 0:
            raise DataError(f"dataset {self.name!r}: no sample longer than filter_len={filter_len} tokens")

    @staticmethod
    def _load(name: str, split: str):
        try:
            import datasets
        except ImportError as e:  # an optional dependency: only this recipe reads Hub datasets
            raise DataError("loading a Hub chat dataset needs the 'datasets' package, in the training extra: "
                            "pip install 'ahn-harness[train]' (or use data.source='jsonl' with a local file)") from e
        local = Path(name)
        hint = (f"Download it on a connected machine (`hf download --repo-type dataset {name} "
                f"--local-dir DIR`) and set data.path=DIR, or use data.source='jsonl' with a local file.")
        if local.is_dir() and (local / "state.json").is_file():
            return datasets.load_from_disk(str(local))
        if not local.exists() and _offline():
            try:
                return datasets.load_dataset(name, split=split)
            except Exception as e:
                raise DataError(f"dataset {name!r} is not in the local cache and the Hub is offline "
                                f"(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE). {hint}") from e
        try:
            return datasets.load_dataset(name, split=split)
        except Exception as e:
            raise DataError(f"could not load dataset {name!r} split {split!r} ({type(e).__name__}: {e}). "
                            f"{hint}") from e

    def get(self, index: int) -> Example:
        rec = self.data[index]
        return {"input_ids": list(rec["input_ids"]), "labels": list(rec["labels"])}

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "size": self.size}


def _is_byte_tokenizer(tokenizer: Any) -> bool:
    try:
        return _encode(tokenizer, "aé") == [97, 195, 169]
    except Exception:
        return False


class SyntheticSource(Source):
    """The tiny world's endless corpus: document ``i`` is drawn from :mod:`tasks.synthetic.corpus` with its own
    seed, so any document can be made without the ones before it (resume, data workers).

    Each document is one sequence: its tokens (plus EOS), padded to ``seq_len`` with ``-100`` labels.
    ``labels="answer"`` keeps labels only on each document's answer and its EOS, as chat SFT data keeps them only
    on the response: the loss then sits where the retrieval happens instead of being spread over filler text.
    """

    size = None

    def __init__(self, tokenizer: Any, seq_len: int, *, min_len: int | None = None,
                 tasks: Sequence[str] = ("passkey", "number_string", "kv_retrieval", "prose"),
                 weights: Sequence[float] | None = None, seed: int = 0, append_eos: bool = True,
                 labels: str = "all") -> None:
        from tasks.synthetic.corpus import ALL_TASKS

        if labels not in ("all", "answer"):
            raise DataError(f"synthetic labels must be 'all' or 'answer', got {labels!r}")
        self.labels = labels

        unknown = [t for t in tasks if t not in ALL_TASKS]
        if unknown:
            raise DataError(f"unknown synthetic corpus task(s) {unknown}; valid: {', '.join(ALL_TASKS)}")
        self.tokenizer, self.seq_len, self.seed = tokenizer, seq_len, seed
        self.tasks, self.weights = list(tasks), list(weights) if weights else None
        self.eos = tokenizer.eos_token_id if append_eos else None
        room = seq_len - (1 if self.eos is not None else 0)
        self.max_len = max(1, room)
        self.min_len = min(self.max_len, min_len if min_len is not None else max(1, int(0.9 * room)))
        self._count: Callable[[str], int] | None = None if _is_byte_tokenizer(tokenizer) else \
            (lambda s: len(_encode(self.tokenizer, s)))

    def document(self, index: int):
        from tasks.synthetic.corpus import training_documents

        seed = random.Random(f"ahn-train-corpus/{self.seed}/{index}").getrandbits(32)
        return next(iter(training_documents(seed, self.min_len, self.max_len, self.tasks, n_docs=1,
                                            weights=self.weights, count_tokens=self._count)))

    def get(self, index: int) -> Example:
        doc = self.document(index)
        ids = _encode(self.tokenizer, doc.text)[: self.max_len]
        if self.eos is not None:
            ids.append(self.eos)
        labels = list(ids)
        if self.labels == "answer":
            start = len(_encode(self.tokenizer, doc.text[: doc.answer_start]))
            labels = [IGNORE] * min(start, len(ids)) + labels[start:]
        return {"input_ids": ids, "labels": labels}

    def describe(self) -> dict[str, Any]:
        return {"source": "synthetic", "seq_len": self.seq_len, "min_len": self.min_len, "tasks": self.tasks,
                "labels": self.labels,
                "weights": self.weights, "seed": self.seed}


# ------------------------------------------------------------------------------------------------------
# micro-batches


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, L]
    labels: torch.Tensor  # [B, L], IGNORE on padding
    index: int  # the global micro-batch index
    n_tokens: int  # real (non-pad) tokens


class MicroBatches:
    """Micro-batch ``g`` holds items ``g*B .. g*B+B-1`` of the run's example stream, right-padded.

    A finite source is walked in a seeded permutation per epoch (``shuffle``) or in order; an endless source
    by index. Right padding never changes the real tokens' outputs (causal attention), and padding is -100.
    """

    def __init__(self, source: Source, batch_size: int, pad_id: int, *, seed: int = 0, shuffle: bool = True,
                 pad_to: int | None = None) -> None:
        self.source, self.batch_size, self.pad_id = source, batch_size, pad_id
        self.seed, self.shuffle, self.pad_to = seed, shuffle, pad_to
        self._perm: tuple[int, list[int]] | None = None

    def item_index(self, k: int) -> int:
        n = self.source.size
        if n is None:
            return k
        epoch, pos = divmod(k, n)
        if not self.shuffle:
            return pos
        if self._perm is None or self._perm[0] != epoch:
            order = list(range(n))
            random.Random(f"ahn-train-order/{self.seed}/{epoch}").shuffle(order)
            self._perm = (epoch, order)
        return self._perm[1][pos]

    def __call__(self, g: int) -> Batch:
        items = [self.source.get(self.item_index(g * self.batch_size + j)) for j in range(self.batch_size)]
        length = max(len(it["input_ids"]) for it in items)
        if self.pad_to is not None:
            length = max(length, self.pad_to)
        ids = torch.full((len(items), length), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), length), IGNORE, dtype=torch.long)
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            ids[i, :n] = torch.tensor(it["input_ids"], dtype=torch.long)
            labels[i, :n] = torch.tensor(it["labels"], dtype=torch.long)
        return Batch(ids, labels, g, sum(len(it["input_ids"]) for it in items))


def _identity(batch: Batch) -> Batch:
    return batch


class _BatchDataset(torch.utils.data.Dataset):
    def __init__(self, batches: MicroBatches) -> None:
        self.batches = batches

    def __getitem__(self, g: int) -> Batch:
        return self.batches(g)

    def __len__(self) -> int:  # pragma: no cover - the sampler decides what is read
        return 1 << 62


def batch_iterator(batches: MicroBatches, indices: Sequence[int] | range, num_workers: int = 0):
    """Iterate the micro-batches ``indices`` in order, built by ``num_workers`` background processes."""
    if num_workers <= 0:
        return (batches(g) for g in indices)
    loader = torch.utils.data.DataLoader(_BatchDataset(batches), batch_size=None, sampler=list(indices),
                                         num_workers=num_workers, collate_fn=_identity, prefetch_factor=4,
                                         persistent_workers=False)
    return iter(loader)
