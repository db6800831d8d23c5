"""The condition vector: the one-hot blocks of the categorical columns, all zero when unknown.

In training, each noisy copy of a real row reveals its own category of one categorical column
(chosen uniformly at random) with probability ``rate``, and nothing otherwise; the revealed
value belongs to that row, so it is part of the row's own per-example gradient. The all-zero
vector is the unconditional model (classifier-free style). In sampling, the requested
categories are set in their blocks (several blocks at once when several columns are fixed).
"""

from __future__ import annotations

import torch

from dpsynth.data.transform import Span, TableTransformer


class ConditionSpace:
    def __init__(self, transformer: TableTransformer) -> None:
        self.spans: list[Span] = [s for s in transformer.spans if s.kind == "softmax" and s.role == "value"]
        self.offsets: list[int] = []
        pos = 0
        for s in self.spans:
            self.offsets.append(pos)
            pos += s.dim
        self.dim = pos

    def index_of(self, column: str) -> int | None:
        return next((j for j, s in enumerate(self.spans) if s.column == column), None)

    def reveal(self, onehot: torch.Tensor, *, copies: int, rate: float, gen: torch.Generator) -> torch.Tensor:
        """``[B, copies, dim]`` condition vectors for a batch of real one-hot encoded rows ``[B, d]``."""
        b = onehot.shape[0]
        cond = onehot.new_zeros(b, copies, self.dim)
        if not self.spans or rate <= 0:
            return cond
        on = torch.rand(b, copies, generator=gen) < rate
        pick = torch.randint(len(self.spans), (b, copies), generator=gen)
        for j, (span, off) in enumerate(zip(self.spans, self.offsets)):
            rows = on & (pick == j)
            block = onehot[:, None, span.start : span.stop].expand(b, copies, span.dim)
            cond[..., off : off + span.dim] = torch.where(rows[..., None], block, 0.0)
        return cond

    def fixed(self, n: int, categories: dict[int, int]) -> torch.Tensor:
        """``[n, dim]`` with block j set to category ``categories[j]`` for every conditioned block."""
        cond = torch.zeros(n, self.dim)
        for j, code in categories.items():
            cond[:, self.offsets[j] + code] = 1.0
        return cond
