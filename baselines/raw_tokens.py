"""A chunk's raw keys (or values) without copying the kept window to append the chunk to it.

The raw tokens of a forward are the kept ones (the cache's) then the chunk's new ones, along dim 2
(`ChunkPlan`). Concatenating them costs a copy of the whole window per layer, chunk and tensor, and the kept
tokens for the next chunk and the split attention's unmasked piece were two more: three window-sized copies of
keys and three of values per layer and chunk, ~0.33 s of `cat` kernels in a 131,072-token ahn-gdn prefill on
an H100 (`bench/profile_prefill.py`). :class:`RawTokens` answers each request with a view where the
tokens lie in one part, copies at most once into the kept tokens, serves any prefix of those as a view (the
split path's unmasked piece is one), and concatenates everything only for a caller that asks for all of it
(the masked reference, FlexAttention, a method's memory keys).
"""

from __future__ import annotations

import torch


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, length) ranges without empty ones, adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for start, length in ranges:
        if length <= 0:
            continue
        if out and out[-1][0] + out[-1][1] == start:
            out[-1] = (out[-1][0], out[-1][1] + length)
        else:
            out.append((start, length))
    return out


class RawTokens:
    """`old` [B, H, n_old, dh] (None: nothing kept) then `new` [B, H, c, dh], as one sequence of raw indices."""

    def __init__(self, old: torch.Tensor | None, new: torch.Tensor) -> None:
        self.old, self.new = old, new
        self.n_old = 0 if old is None else old.shape[2]
        self._all: torch.Tensor | None = None
        self._kept: tuple[list[tuple[int, int]], torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.n_old + self.new.shape[2]

    def all(self) -> torch.Tensor:
        """Every raw token as one tensor (one copy, made once)."""
        if self._all is None:
            self._all = self.new if self.old is None else torch.cat([self.old, self.new], 2)
        return self._all

    def narrow(self, start: int, length: int) -> torch.Tensor:
        """Raw tokens [start, start + length): a view of one part when they lie in it (or of the kept tokens,
        or of all of them, when those were made), else one copy of just these."""
        if start >= self.n_old:
            return self.new.narrow(2, start - self.n_old, length)
        if start + length <= self.n_old:
            return self.old.narrow(2, start, length)
        if self._all is not None or (start == 0 and length == len(self)):
            return self.all().narrow(2, start, length)
        view = self._from_kept([(start, length)])
        if view is not None:
            return view
        return torch.cat([self.old.narrow(2, start, self.n_old - start),
                          self.new.narrow(2, 0, start + length - self.n_old)], 2)

    def select(self, ranges: list[tuple[int, int]]) -> torch.Tensor:
        """The raw tokens of (start, length) `ranges`, in that order, as one tensor: a view when they are one run
        of a part or a prefix of the kept tokens, else one copy."""
        ranges = _merged(ranges)
        if not ranges:
            return self.new.narrow(2, 0, 0)
        if len(ranges) == 1:
            return self.narrow(*ranges[0])
        view = self._from_kept(ranges)
        if view is not None:
            return view
        pieces = []
        for start, length in ranges:  # each range cut at the boundary of the two parts, as views
            if start < self.n_old < start + length:
                pieces += [self.old.narrow(2, start, self.n_old - start),
                           self.new.narrow(2, 0, start + length - self.n_old)]
            else:
                pieces.append(self.narrow(start, length))
        return torch.cat(pieces, 2)  # one copy

    def keep(self, n_sink_after: int, keep_idx: int) -> torch.Tensor:
        """The tokens that stay after the chunk (`ChunkPlan`): raw [0, n_sink_after) and [keep_idx, end)."""
        ranges = _merged([(0, n_sink_after), (keep_idx, len(self) - keep_idx)])
        kept = self.select(ranges)
        self._kept = (ranges, kept)
        return kept

    def _from_kept(self, ranges: list[tuple[int, int]]) -> torch.Tensor | None:
        """`ranges` as a view of the kept tokens, when they are a prefix of them; else None."""
        if self._kept is None:
            return None
        kept_ranges, kept = self._kept
        n = 0
        for i, (start, length) in enumerate(ranges):
            if i >= len(kept_ranges) or kept_ranges[i][0] != start:
                return None
            if length != kept_ranges[i][1]:
                if i != len(ranges) - 1 or length > kept_ranges[i][1]:
                    return None
            n += length
        return kept.narrow(2, 0, n)
