"""Per-example gradients with torch.func, for losses where one example is several forward rows.

DPDM's *noise multiplicity* (Dockhorn et al., 2023) evaluates each training image at K noise
levels and averages the K losses. Privacy needs that average to be ONE example's loss: the
per-example gradient is the gradient of the mean over its K copies, and only that is clipped.
opacus' hooks would see K*B rows and clip each copy; instead ``vmap(grad(loss_one))`` maps a
per-example loss over the batch (each call sees its K copies as a small batch), and the result
goes into ``p.grad_sample`` for opacus' DPOptimizer (``grad_sample_mode="no_op"``), which then
clips per example, sums, adds noise, and the ledger charges the step as usual.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.func import functional_call, grad_and_value, vmap


def per_example_grads(
    module: torch.nn.Module,
    loss_one: Callable[..., torch.Tensor],
    *batched: torch.Tensor,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Gradients of ``loss_one(forward, *example)`` for each example along dim 0 of ``batched``.

    ``forward(*args, **kwargs)`` calls ``module`` with the parameters being differentiated;
    ``loss_one`` must return a scalar for one example. Returns ``({name: (B, *shape)}, losses (B,))``.
    """
    params = {k: p.detach() for k, p in module.named_parameters() if p.requires_grad}
    buffers = {k: b.detach() for k, b in module.named_buffers()}
    batch = batched[0].shape[0]
    if batch == 0:  # an empty Poisson batch: no example, zero contribution
        grads = {k: torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device) for k, p in params.items()}
        return grads, torch.zeros(0, device=batched[0].device)

    def one(p, *example):
        def forward(*args, **kwargs):
            return functional_call(module, (p, buffers), args, kwargs)

        return loss_one(forward, *example)

    in_dims = (None,) + (0,) * len(batched)
    grads, losses = vmap(grad_and_value(one), in_dims=in_dims, randomness="error")(params, *batched)
    return grads, losses


def set_grad_samples(module: torch.nn.Module, grads: dict[str, torch.Tensor]) -> None:
    """Store per-example gradients where opacus' DPOptimizer reads them."""
    for name, p in module.named_parameters():
        if p.requires_grad:
            p.grad_sample = grads[name]
