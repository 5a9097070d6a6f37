"""Can an AHN cell on the tiny base see the needle at all? Rank of the needle by what the cell reads.

An AHN cell reads its memory with the layer's post-RoPE query and writes it with the post-RoPE keys, both
L2-normalised (``ahn/cells.py``). For held-out passkey prompts whose needle has left the window, this prints,
per layer and head, the median rank of the needle's first digit among the evicted keys for the query that
predicts the first answer digit, by cosine (what the cell sees) and by scaled dot product (what softmax
attention sees), and the mean cosine of the needle against the mean over evicted keys.

    python -m studies.tiny_needle_ranks [--base leaderboards/tiny/base --length 1024 --window 512 --samples 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]

NEEDLE = "The pass key is "


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default=str(REPO / "leaderboards" / "tiny" / "base"))
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--window", type=int, default=512, help="sinks + window: keys before length - window are evicted")
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args(argv)

    from transformers import AttentionInterface, AutoModelForCausalLM
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from ahn.train.tiny_base import eval_items

    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def recording_sdpa(module, query, key, value, attention_mask, **kwargs):
        seen[module.layer_idx] = (query.detach(), key.detach())
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("needle_ranks", recording_sdpa)
    model = AutoModelForCausalLM.from_pretrained(args.base, attn_implementation="needle_ranks",
                                                 dtype=torch.float32).eval()
    evicted = args.length - args.window
    stats: dict[tuple[int, int], list[tuple[int, int, float, float]]] = {}
    used = 0
    for item in eval_items(["passkey"], [args.length], args.samples, 17):
        text = bytes(t for t in item.ids if t < 256).decode()
        needle = text.index(NEEDLE) + len(NEEDLE)  # byte tokens: character index = token index
        if needle >= evicted:
            continue  # still inside the window
        used += 1
        with torch.no_grad():
            model(input_ids=torch.tensor([item.ids]), use_cache=False)
        answer = bytes(t for t in item.ids[item.answer_start:] if t < 256).decode()
        query_pos = item.answer_start - 1 + (1 if answer.startswith(" ") else 0)  # predicts the first digit
        for layer, (q, k) in seen.items():
            heads, kv_heads = q.shape[1], k.shape[1]
            for h in range(heads):
                keys = k[0, h // (heads // kv_heads), :evicted]
                qh = q[0, h, query_pos]
                cos = F.normalize(keys, dim=-1) @ F.normalize(qh, dim=-1)
                dot = keys @ qh / keys.shape[-1] ** 0.5
                stats.setdefault((layer, h), []).append(
                    (int((cos > cos[needle]).sum()), int((dot > dot[needle]).sum()), float(cos[needle]),
                     float(cos.mean())))
    print(f"{used} prompts of {args.length} tokens with the needle among the first {evicted} (evicted) tokens")
    print("| layer | head | median rank (cosine) | median rank (dot) | cos(needle) | mean cos (evicted) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for (layer, h), rows in sorted(stats.items()):
        print(f"| {layer} | {h} | {statistics.median(r[0] for r in rows):.0f} | "
              f"{statistics.median(r[1] for r in rows):.0f} | {statistics.mean(r[2] for r in rows):.2f} | "
              f"{statistics.mean(r[3] for r in rows):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
