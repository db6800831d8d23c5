"""The denoiser: an MLP on the encoded row, its timestep embedding and a condition vector.

Every layer acts on the last dimension, so inputs may carry extra leading dimensions: the
training loss runs it on ``[batch, copies, dim]`` (noise multiplicity) and opacus computes
one per-example gradient over all copies of an example. Only Linear, LayerNorm and SiLU are
used, which opacus' ModuleValidator accepts (no BatchNorm).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``[..., dim]`` of integer timesteps of any shape."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.to(torch.float32).unsqueeze(-1) * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Block(nn.Module):
    """Pre-norm residual block: ``h + W2 silu(W1 LayerNorm(h))``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(nn.functional.silu(self.fc1(self.norm(h))))


class MLPDenoiser(nn.Module):
    """``out = head(blocks(in(x) + time(emb(t)) + cond(c)))``, ``out`` has the shape of ``x``."""

    def __init__(self, *, data_dim: int, cond_dim: int, width: int, depth: int, time_dim: int) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.inp = nn.Linear(data_dim, width)
        self.time = nn.Sequential(nn.Linear(time_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.cond = nn.Linear(cond_dim, width, bias=False) if cond_dim > 0 else None
        self.blocks = nn.Sequential(*[Block(width) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, data_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x: ``[..., data_dim]``; t: timesteps broadcastable to ``x.shape[:-1]``; cond: ``[..., cond_dim]``."""
        h = self.inp(x) + self.time(timestep_embedding(t, self.time_dim))
        if self.cond is not None and cond is not None:
            h = h + self.cond(cond)
        return self.head(nn.functional.silu(self.norm(self.blocks(h))))
