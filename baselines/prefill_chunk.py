"""The prefill's default chunk, in one torch-free place: the engine (`baselines.engine.prefill`) and the
presets (`harness.presets`) both read it.

16,384 tokens: ahn-gdn's 131,072-token prefill (Qwen2.5-3B shape, 128 + 32,640)
on an H100 took 3.90 and 3.93 s at 16,384 against 4.00 and 4.11 s at 4,096, on two machines (a quarter of
the chunks: fewer launches and host round trips), at a peak of 8.4 against 7.5 GiB (`bench/bench_gpu.py`,
`leaderboards/perf/prefill-chunk-size-h100/`). The tiny presets keep their own 512.
"""

DEFAULT_CHUNK = 16384
