"""LV-Eval's factrecall on a real-text haystack, English (``prose_en``) and Chinese (``prose_zh``).

The prompt, the question, the answer and the names in the confusing facts are LV-Eval's (`docs/BENCHMARKS.md` A1,
A3; the official ``factrecall_en``/``factrecall_zh`` records ask "What is the name of the scientist widely
acclaimed as the foundational figure of modern physics?" with the answer "Ludwig Beethoven", and distract with
"David Beckham"). LV-Eval's exact fact sentences live in its data files, which cannot be fetched here: the fact
and confusing-fact sentences below are this project's, written in the same shape (a fact that answers the
question about a renamed Einstein; confusing facts that give the other name a similar but different claim).
The fact goes to the requested depth, each confusing fact to a depth drawn from the sample's seed. Scored with
LV-Eval's own metric, ``qa_f1_score`` / ``qa_f1_zh_score`` against the answer (`tasks/scoring/lveval.py`).
"""

from __future__ import annotations

from tasks.prompts import LVEVAL_DATASET_PROMPT, LVEVAL_MAX_GEN
from tasks.synthetic.base import Built, Plan, fill

from .draw import Draw
from .haystacks import PAD_MAX, fitted_context, haystack, n_chunks

QUESTION = {
    "en": "What is the name of the scientist widely acclaimed as the foundational figure of modern physics?",
    "zh": "被世人广泛推崇为现代物理学奠基人的科学家叫什么名字？",
}
ANSWER = {"en": "Ludwig Beethoven", "zh": "贝多芬"}
FACT = {
    "en": "Ludwig Beethoven was a German-born theoretical physicist who is widely acclaimed as the foundational "
          "figure of modern physics; his theory of relativity and his mass-energy equivalence formula changed how "
          "the universe is understood.",
    "zh": "贝多芬是一位出生于德国的理论物理学家，被世人广泛推崇为现代物理学的奠基人，他提出的相对论和质能方程改变了人类对宇宙的认识。",
}
CONFUSING_FACTS = {
    "en": (
        "David Beckham was an Italian astronomer, physicist and mathematician, regarded as one of the pioneers of "
        "modern astronomy.",
        "David Beckham was an English scientist who is widely acclaimed as the foundational figure of classical "
        "mechanics.",
    ),
    "zh": (
        "贝克汉姆是一位意大利天文学家、物理学家和数学家，被认为是现代天文学的先驱之一。",
        "贝克汉姆是一位英国科学家，被世人广泛推崇为经典力学的奠基人。",
    ),
}
DATASET = {"factrecall_en": "factrecall_en", "factrecall_zh": "factrecall_zh"}  # task -> LV-Eval dataset
LANGUAGE = {"factrecall_en": "en", "factrecall_zh": "zh"}
MAX_NEW_TOKENS = {task: LVEVAL_MAX_GEN[d] for task, d in DATASET.items()}


def plan(task: str, draw: Draw, depth: float) -> Plan:
    lang = LANGUAGE[task]
    kind = "prose_en" if lang == "en" else "prose_zh"
    start = draw.below(n_chunks(kind))
    hay = haystack(kind, start)
    confusing = [(draw.uniform(), text) for text in CONFUSING_FACTS[lang]]
    placed = [(depth, FACT[lang] + hay.sep)] + [(d, text + hay.sep) for d, text in confusing]
    template = LVEVAL_DATASET_PROMPT[DATASET[task]]

    def build(units: int, pad: int) -> Built:
        ctx, offsets, achieved = fitted_context(hay, units, pad, placed)
        prompt, begin = fill(template, ctx, input=QUESTION[lang])
        return Built(
            prompt=prompt,
            answers=[ANSWER[lang]],
            completion=" " + ANSWER[lang] if lang == "en" else ANSWER[lang],
            context_start=begin,
            context_end=begin + len(ctx),
            needle_offsets=[begin + o for o in offsets],
            depth_achieved=achieved[0],
            extra={"input": QUESTION[lang], "confusing_facts": list(CONFUSING_FACTS[lang]),
                   "metric": "qa_f1_score" if lang == "en" else "qa_f1_zh_score",
                   "benchmark_task": f"lveval/{DATASET[task]}", "haystack": kind, "haystack_start": start,
                   "needle_depths": achieved},
        )

    return Plan(build=build, min_units=0, pad_max=PAD_MAX, depth=depth)
