"""Benchmark adapters, prompting and truncation, official-parity scorers, synthetic generators.

Never imports torch (scoring and data preparation must run anywhere, fast); kept light on import: the
adapters, the Hub client and transformers are only imported by the modules that need them.
"""

from tasks.sample import Sample

__all__ = ["Sample"]
