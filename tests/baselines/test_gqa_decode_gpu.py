"""GPU only: FlexAttention compiled at Qwen2.5-0.5B's head shape (14 query heads on 2 KV heads of 64, a group of
7) takes inductor's decoding kernel with the group as query rows and its main kernel with the group as heads
(docs/GQA_DECODE.md), and the rows call equals the products: fp32 within 1e-4 relative, bf16 within 2^-6 (each
input rounded to 8 bits of mantissa, the output once more), as the 3B shape's test in
`tests/baselines/test_static_decode_gpu.py`."""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from baselines.static_decode import decode_attention, flex_decode_attention, slot_blocks

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [True, False])
def test_the_group_as_rows_takes_the_decoding_kernel_and_equals_the_products(dtype, rows):
    import torch._dynamo
    import torch._inductor.config

    from bench.bench_gqa_decode import kernel_choices

    g = torch.Generator("cuda").manual_seed(0)
    b, c = 5, 4096 + 1024
    q = torch.randn(b, 14, 1, 64, device="cuda", generator=g)
    k = torch.randn(b, 2, c, 64, device="cuda", generator=g)
    v = torch.randn(b, 2, c, 64, device="cuda", generator=g)
    valid = torch.rand(b, c, device="cuda", generator=g) > 0.3
    valid[1, 100:] = False  # a short row
    bias = torch.zeros(b, c, device="cuda").masked_fill(~valid, float("-inf"))[:, None]
    ref = decode_attention(q.double(), k.double(), v.double(), bias.double(), 64 ** -0.5)
    torch._dynamo.reset()
    # lowered here, not taken from inductor's cache, so its choice of kernel is logged
    with kernel_choices() as chooser, mock.patch.object(torch._inductor.config, "fx_graph_cache", False):
        out = torch.compile(flex_decode_attention)(q.to(dtype), k.to(dtype), v.to(dtype), bias, 64 ** -0.5,
                                                   slot_blocks(c, q.device, 7 if rows else 1), rows=rows)
    assert chooser.decisions == [rows]  # rows: the decoding kernel; heads: the main kernel
    rel = ((out.double() - ref).norm() / ref.norm()).item()
    assert rel < (1e-4 if dtype == torch.float32 else 2 ** -6), rel
