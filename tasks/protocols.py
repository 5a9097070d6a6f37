"""Which protocol a task selection runs under: the benchmark's own (``official``) or the AHN paper's (``paper``).

The same benchmark name means two different experiments. LV-Eval's own protocol middle-truncates every prompt
to 15,500 tokens without a chat template, so a method that keeps 128 sinks + a 32,640-token window never
evicts a token; the AHN paper ran LV-Eval's 128k level untruncated (256,000-token budget) with the chat
template (`docs/BENCHMARKS.md` C1). A paper preset therefore runs the paper's protocol by default, and the
benchmark's own protocol stays one explicit ``--protocol official`` away.

Under ``paper``, selections are rewritten onto the ``ahn-paper`` family before anything is parsed or loaded:

* ``lveval`` → ``ahn-paper:lveval`` (11 datasets at 128k); ``lveval:<dataset>`` → ``ahn-paper:lveval/<dataset>``;
  a level other than 128k is an error (the paper evaluated 128k only).
* ``infinitebench`` → the paper's two InfiniteBench tasks (En.QA, Zh.QA); ``infinitebench:longbook_qa_eng``
  / ``_chn`` → their paper versions; the other InfiniteBench tasks, which the paper did not run, keep the
  official protocol.
* every other selection is unchanged (``longbench`` already runs the paper's protocol; ``ahn-paper:…`` and
  the synthetic tasks have one protocol).
"""

from __future__ import annotations

from tasks import ahn_paper

PROTOCOLS: tuple[str, ...] = ("auto", "paper", "official")


def resolve(protocol: str, paper_preset: bool) -> str:
    """``auto`` → ``paper`` for a paper preset, ``official`` otherwise; the other two stand as given."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if protocol == "auto":
        return "paper" if paper_preset else "official"
    return protocol


def apply(spec: str, protocol: str) -> str:
    """The task selection ``spec`` as it runs under ``protocol`` (``paper`` or ``official``)."""
    if protocol not in ("paper", "official"):
        raise ValueError(f"apply() takes a resolved protocol, 'paper' or 'official', got {protocol!r}")
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if protocol == "official":
        return ",".join(items)
    out: list[str] = []
    for item in items:
        for rewritten in _paper_selection(item):
            if rewritten not in out:
                out.append(rewritten)
    return ",".join(out)


def _paper_selection(item: str) -> list[str]:
    body, at, levels = item.partition("@")
    sep = ":" if ":" in body else ("/" if "/" in body else "")
    family, _, name = body.partition(sep) if sep else (body, "", "")
    family, name = family.strip(), name.strip()
    if family == "lveval":
        bad = [lv for lv in levels.replace("|", "+").split("+") if lv.strip() and lv.strip() != ahn_paper.LVEVAL_LEVEL]
        if bad:
            raise ValueError(f"{item!r}: the AHN paper's protocol runs LV-Eval at {ahn_paper.LVEVAL_LEVEL} only (got "
                             f"{bad[0]!r}); pass --protocol official for LV-Eval's own protocol at other levels")
        return [f"{ahn_paper.FAMILY}:lveval" + (f"/{name}" if name else "")]
    if family == "infinitebench":
        if at:
            return [item]  # InfiniteBench has no levels: the family's own check names the error
        if not name:
            return [f"{ahn_paper.FAMILY}:{t}" for t in ahn_paper.IB_TASKS]
        if name in ahn_paper.IB_TASKS:
            return [f"{ahn_paper.FAMILY}:{name}"]
    return [item]


def budget_note(protocol: str) -> str:
    """One line for logs and the README: what each protocol does to LV-Eval."""
    if protocol == "paper":
        return ("the AHN paper's protocol: LV-Eval 128k untruncated (256,000-token budget) with the chat template, "
                "InfiniteBench En/Zh.QA left-truncated to 128,000")
    return "each benchmark's own protocol: LV-Eval middle-truncated to 15,500 tokens, no chat template"


#: Tokens a chat template may add around a truncated prompt (Qwen2.5's default system turn is ~30).
CHAT_TEMPLATE_SLACK = 256


def max_prompt_tokens(spec: str, max_length: int | None = None) -> int | None:
    """An upper bound of the prompt tokens of every sample the selection ``spec`` gives, known before any data
    or weights are read: the truncation budget (plus a chat template's turn markers) of a truncated task, the
    level of a length-controlled one (whose prompts are built to that many tokens). ``None`` when some task's
    prompts are unbounded (a benchmark run untruncated, a family without lengths)."""
    from tasks.families import parse_length
    from tasks.prompting import with_max_length
    from tasks.registry import parse_task_spec, task_settings

    bounds: list[int] = []
    for sel in parse_task_spec(spec):
        if sel.family == "synthetic" and sel.levels:  # generated to the level's token count
            bounds.append(max(parse_length(lv) for lv in sel.levels))
            continue
        for task in _task_names(sel.family, sel.name):
            settings = task_settings(task)
            truncation = with_max_length(settings.truncation, max_length)
            if truncation.kind == "none":
                return None
            bounds.append(truncation.max_tokens + (CHAT_TEMPLATE_SLACK if settings.chat_template else 0))
    return max(bounds) if bounds else None


def _task_names(family: str, name: str | None) -> list[str]:
    """Every ``family/task`` a selection of ``family`` (one ``name``, or all when None) stands for."""
    from tasks.family import get_family

    if family == ahn_paper.FAMILY:
        return [f"{family}/{t}" for t in (ahn_paper.expand(name) if name else ahn_paper.TASKS)]
    names = [name] if name else list(get_family(family).names())
    return [f"{family}/{n}" for n in names]
