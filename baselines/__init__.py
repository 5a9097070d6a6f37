"""Memory methods over stock Hugging Face causal LMs: the interface and the training-free baselines."""

from baselines.interface import MemoryMethod, attach, is_attached
from baselines.methods import CompressivePooling, FullAttention, SinksWindow, make_method, method_names

__all__ = [
    "MemoryMethod", "attach", "is_attached", "make_method", "method_names",
    "FullAttention", "SinksWindow", "CompressivePooling",
]
