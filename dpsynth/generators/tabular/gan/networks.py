"""dp-gan's networks: the generator (never sees real rows, so BatchNorm is allowed), the
DP-SGD-compatible discriminator, the output activation and the conditional loss (CTGAN)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dpsynth.data.transform import Span


class Residual(nn.Module):
    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(i, o), nn.BatchNorm1d(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class GeneratorNet(nn.Module):
    """Never sees real data (no DP hooks needed), so BatchNorm is allowed here."""

    def __init__(self, *, noise_dim: int, cond_dim: int, hidden: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        layers, dim = [], noise_dim + cond_dim
        for h in hidden:
            layers.append(Residual(dim, h))
            dim += h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.cat([z, cond], dim=1)))


class Discriminator(nn.Module):
    """DP-SGD compatible: Linear + LeakyReLU + Dropout only (no BatchNorm)."""

    def __init__(self, *, in_dim: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers, dim = [], in_dim
        for h in hidden:
            layers += [nn.Linear(dim, h), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            dim = h
        layers.append(nn.Linear(dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def activate(raw: torch.Tensor, spans: tuple[Span, ...], *, tau: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """tanh on numeric spans, Gumbel-softmax on one-hot spans (as in CTGAN)."""
    parts = []
    for s in spans:
        block = raw[:, s.start : s.stop]
        if s.kind == "tanh":
            parts.append(torch.tanh(block))
        else:
            u = torch.rand(block.shape, generator=gen).clamp_(1e-10, 1 - 1e-10)
            gumbel = -torch.log(-torch.log(u))
            parts.append(F.softmax((block + gumbel) / tau, dim=1))
    return torch.cat(parts, dim=1)



def cond_loss(fake: torch.Tensor, block: torch.Tensor, category: torch.Tensor, spans: list[Span]) -> torch.Tensor:
    """Cross-entropy pushing the generated block to the requested category (CTGAN)."""
    if not spans:
        return fake.new_zeros(())
    loss = fake.new_zeros(())
    for j, span in enumerate(spans):
        rows = block == j
        if rows.any():
            probs = fake[rows, span.start : span.stop].clamp_min(1e-8)
            loss = loss + F.nll_loss(torch.log(probs), category[rows], reduction="sum")
    return loss / fake.shape[0]
