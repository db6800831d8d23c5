"""Book-keeping clipping: DP-SGD's clipped gradient sum from ONE backward pass.

Bu, Wang, Zha and Karypis, "Differentially private optimization on large model at small cost"
(ICML 2023). For a layer ``y = x W^T + b`` the gradient of example i is ``G_i^T A_i`` (``A_i``:
its input rows, ``G_i``: the loss gradient at its output rows), so:

- its per-example gradient norm comes from ``A_i`` and ``G_i`` alone: ghost norm
  ``<G_i G_i^T, A_i A_i^T>`` costs ``O(T^2 (d_in + d_out))`` per example (``T`` rows per example,
  e.g. dp-diffusion's noise copies), the explicit ``|G_i^T A_i|`` costs ``O(T d_in d_out)``; the
  cheaper is chosen per layer (for ``T = 1`` both are ``|g_i| |a_i|``);
- the clipped sum is ``sum_i c_i G_i^T A_i = A^T (c * G)``: one matrix product per layer, from
  the same ``A`` and ``G``, once the clip factors ``c_i = min(1, C / (|grad_i| + 1e-6))`` (opacus'
  formula) are known.

So the private step costs one forward, one backward that computes only the output gradients
(``torch.autograd.grad`` to the layer outputs; no weight gradient is formed), the norms, and one
product per layer. opacus' ghost clipping (``grad_sample_mode="ghost"``) instead runs a second
backward of the re-weighted loss. Layers other than Linear (LayerNorm, GroupNorm, Conv, Embedding)
take opacus' own per-example gradient function (``GradSampleModule.GRAD_SAMPLERS``; Conv2d: torch's
``conv2d_weight`` under ``vmap``): their norms and the weighted sum come from those gradients.

One example may span several forward rows (DPDM's noise multiplicity): a layer whose leading
dimension is ``B * K`` for ``B`` per-example losses holds the K rows of each example next to each
other (example-major), and the example's gradient is the sum over its rows, clipped once.

Noise, the division by the expected batch size and the accountant's step hook stay opacus':
the engine makes the module private in ghost mode (``DPOptimizerFastGradientClipping`` reads the
clipped sum from ``p.grad``), removes opacus' two-pass hooks and attaches :class:`BookKeeping`.
Released gradient and epsilon are those of opacus' ghost and hooks modes
(``tests/unit/privacy/test_bookkeeping.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from opacus.grad_sample import GradSampleModule
from torch import nn
from torch.func import vmap

from dpsynth.errors import ConfigError, PrivacyError


@dataclass
class _Call:
    module: nn.Module
    inputs: list[torch.Tensor]
    output: torch.Tensor


def _linear_norms(layer: nn.Linear, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Squared per-example gradient norms ``[B]`` of a Linear layer from inputs and output grads
    ``[B, T, d]``: ghost norm or the explicit per-example gradient, whichever costs less."""
    t, d_in, d_out = a.shape[1], a.shape[2], g.shape[2]
    if t == 1:
        gg = g.square().sum(dim=(1, 2))
        weight = gg * a.square().sum(dim=(1, 2))
    elif t * (d_in + d_out) <= d_in * d_out:
        ggt = torch.bmm(g, g.transpose(1, 2))
        weight = (ggt * torch.bmm(a, a.transpose(1, 2))).sum(dim=(1, 2))
        gg = ggt.sum(dim=(1, 2))  # |sum_t g_t|^2: the bias gradient
    else:
        weight = torch.bmm(g.transpose(1, 2), a).square().sum(dim=(1, 2))
        gg = g.sum(dim=1).square().sum(dim=1)
    sq = weight if layer.weight.requires_grad else torch.zeros_like(weight)
    if layer.bias is not None and layer.bias.requires_grad:
        sq = sq + gg
    return sq


def _native_conv2d(layer: nn.Module) -> bool:
    return type(layer) is nn.Conv2d and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)


def _conv2d_per_row(layer: nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
    """Per-row gradients of a Conv2d: torch's own weight gradient (``conv2d_weight``) mapped over
    the rows with ``vmap`` (a grouped convolution; 2-6x faster on CPU than opacus' unfold + einsum
    on the UNet's layers, measured)."""

    def weight_grad(x: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
        return torch.nn.grad.conv2d_weight(x[None], layer.weight.shape, gy[None], stride=layer.stride,
                                           padding=layer.padding, dilation=layer.dilation, groups=layer.groups)

    out = {}
    if layer.weight.requires_grad:
        out[layer.weight] = vmap(weight_grad)(a.to(g.dtype), g)
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = g.sum(dim=(2, 3))
    return out


class BookKeeping:
    """Records each trainable layer's input and output in the forward pass of real rows, and
    turns the per-example losses into the clipped gradient sum in ``p.grad`` (one backward).

    ``enabled()`` says whether a forward pass reads real rows (opacus' ``hooks_enabled`` of the
    wrapped module: :func:`~dpsynth.privacy.grad_modes.without_per_example` turns it off for
    passes that read none)."""

    def __init__(self, module: nn.Module, *, max_grad_norm: float, enabled: Callable[[], bool]) -> None:
        self.max_grad_norm = float(max_grad_norm)
        self.enabled = enabled
        self.layers = [m for m in module.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]
        for m in self.layers:
            if type(m) is not nn.Linear and type(m) not in GradSampleModule.GRAD_SAMPLERS:
                raise ConfigError(f"grad_sample_mode 'bk' has no per-example gradient for layer {type(m).__name__};"
                                  " use 'ghost' or 'hooks'")
        self.params = [p for m in self.layers for p in m.parameters(recurse=False) if p.requires_grad]
        self._calls: list[_Call] = []
        self._handles = [m.register_forward_hook(self._record) for m in self.layers]

    def _record(self, module: nn.Module, inputs, output) -> None:
        if not (module.training and torch.is_grad_enabled() and self.enabled()):
            return
        if any(c.module is module for c in self._calls):
            raise PrivacyError(f"grad_sample_mode 'bk': layer {type(module).__name__} ran twice on one batch of real"
                               " rows (a shared layer); use 'ghost' or 'hooks'")
        self._calls.append(_Call(module, [x.detach() for x in inputs if torch.is_tensor(x)], output))

    def reset(self) -> None:
        """Forget recorded passes (called before each batch of real rows)."""
        self._calls = []

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def backward(self, per_example_losses: torch.Tensor) -> None:
        """``p.grad`` = sum over examples of min(1, C / |grad_i|) grad_i, grad_i the gradient of
        ``per_example_losses[i]`` (what opacus' ghost criterion leaves there after two passes)."""
        calls, self._calls = self._calls, []
        for p in self.params:
            p.grad = None
        batch = per_example_losses.shape[0]
        if batch > 0 and calls:
            grads = torch.autograd.grad(per_example_losses.sum(), [c.output for c in calls], allow_unused=True)
            work = [(c, g.detach()) for c, g in zip(calls, grads) if g is not None]
            sq = per_example_losses.new_zeros(batch)
            parts = []
            for call, g in work:
                part_sq, finish = self._layer(call, g, batch)
                sq = sq + part_sq.to(sq.dtype)
                parts.append(finish)
            coef = (self.max_grad_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
            for finish in parts:
                finish(coef)
        for p in self.params:
            if p.grad is None:  # empty Poisson batch, or a layer the loss does not reach: zero
                p.grad = torch.zeros_like(p)

    def _layer(self, call: _Call, g: torch.Tensor, batch: int):
        """(squared per-example norms [B], a function of the clip factors that writes p.grad)."""
        layer, rows = call.module, g.shape[0]
        if rows % batch:
            raise PrivacyError(f"grad_sample_mode 'bk': layer {type(layer).__name__} saw {rows} rows for {batch} examples")
        if type(layer) is nn.Linear:
            a = call.inputs[0].to(g.dtype).reshape(batch, -1, layer.in_features)
            g3 = g.reshape(batch, -1, layer.out_features)
            sq = _linear_norms(layer, a, g3)

            def finish(coef: torch.Tensor) -> None:
                cg = (g3 * coef.to(g3.dtype).view(batch, 1, 1)).reshape(-1, layer.out_features)
                if layer.weight.requires_grad:
                    layer.weight.grad = cg.t() @ a.reshape(-1, layer.in_features)
                if layer.bias is not None and layer.bias.requires_grad:
                    layer.bias.grad = cg.sum(dim=0)

            return sq, finish
        per_row = (_conv2d_per_row(layer, call.inputs[0], g) if _native_conv2d(layer)
                   else GradSampleModule.GRAD_SAMPLERS[type(layer)](layer, call.inputs, g))
        # an example's rows are contiguous (example-major): its gradient is the sum over them
        per_example = {p: gs.reshape(batch, rows // batch, *gs.shape[1:]).sum(dim=1) if rows != batch else gs
                       for p, gs in per_row.items()}
        sq = sum(gs.reshape(batch, -1).square().sum(dim=1) for gs in per_example.values())

        def finish(coef: torch.Tensor) -> None:
            for p, gs in per_example.items():
                p.grad = torch.tensordot(coef.to(gs.dtype), gs, dims=1)

        return sq, finish
