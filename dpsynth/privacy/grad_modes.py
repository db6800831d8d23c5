"""How opacus computes the per-example clipped gradient: ``grad_sample_mode``.

- ``hooks``: module hooks store every per-example gradient (``p.grad_sample``), then clip.
- ``functorch``: the same per-example gradients from ``torch.func.vmap`` for every layer.
- ``ew``: torch's expanded weights.
- ``ghost``: ghost clipping (Li et al. 2022; Bu et al. 2023): per-example gradient *norms*
  from activations and output gradients, no per-example gradient held, then a second backward
  pass of the loss re-weighted by each example's clip factor. Cheapest in time and memory for
  linear-heavy models (conv layers fall back to per-example gradients for their norms).
- ``bk``: book-keeping clipping (Bu et al. 2023; :mod:`dpsynth.privacy.bookkeeping`): the same
  norms, then the clipped sum from the activations and output gradients of ONE backward pass
  (per layer ``A^T (c * G)``), on opacus' ghost-mode optimizer. Same released gradient as ghost.

Ghost clipping needs the *per-example* loss to go through the criterion that opacus'
``make_private`` returns (``DPLossFastGradientClipping``): its ``backward`` runs both passes. A
plain ``loss.backward()`` in ghost mode would leave the UNCLIPPED gradient in ``p.grad`` (opacus
then adds noise to it and the accountant counts the step as if it were clipped). So the one
DP-SGD loop of dpsynth (:mod:`dpsynth.privacy.dpsgd_loop`) calls
:meth:`dpsynth.privacy.engine.DPSGDEngine.backward` with the per-example losses, which routes
them through that criterion in ghost mode.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from dpsynth.errors import ConfigError

GRAD_SAMPLE_MODES = ("hooks", "functorch", "ew", "ghost", "bk")


def check_grad_sample_mode(mode: str, *, allowed: tuple[str, ...] = GRAD_SAMPLE_MODES) -> str:
    if mode not in allowed:
        raise ConfigError(f"grad_sample_mode must be one of {list(allowed)}, got {mode!r}")
    return mode


class PerExampleLoss(nn.Module):
    """A criterion whose input already is the per-example loss ``[B]``: opacus' ghost-clipping
    wrapper sets ``reduction="none"`` to read it, and ``"mean"`` reduces it as DP-SGD's loss."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, per_example: torch.Tensor) -> torch.Tensor:
        if self.reduction == "none":
            return per_example
        if self.reduction == "sum":
            return per_example.sum()
        return per_example.mean()


@contextmanager
def without_per_example(module: nn.Module) -> Iterator[nn.Module]:
    """The module to call for passes that read no real row (no per-example bookkeeping): opacus'
    hook-based wrappers with their hooks off, or the wrapped module itself for expanded weights."""
    if hasattr(module, "disable_hooks"):
        module.disable_hooks()
        try:
            yield module
        finally:
            module.enable_hooks()
    else:
        yield getattr(module, "_module", module)
