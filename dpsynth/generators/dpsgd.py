"""What every DP-SGD generator (dp-gan, dp-diffusion, dp-gan-image, dp-diffusion-image) shares
besides the training loop of :mod:`dpsynth.privacy.dpsgd_loop`: its DP-SGD hyper-parameters,
declared once.

A DP-SGD generator is a keyword-only dataclass: its fields are its hyper-parameters (the
generated ``__init__`` stores them and nothing else; ``__post_init__`` checks them), so a new
generator declares only what it adds or whose default differs. ``get_params`` returns them as
JSON values (tuples as lists), which is what a run artifact stores and ``cls(**params)`` loads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from dpsynth.privacy.grad_modes import GRAD_SAMPLE_MODES, check_grad_sample_mode


@dataclass(eq=False, kw_only=True)
class DPSGDParams:
    """batch_size: the logical (Poisson) batch; epochs: the legacy plan in passes;
    max_grad_norm: the per-example clip norm; max_physical_batch_size: the most examples in
    memory at once (BatchMemoryManager); grad_sample_mode: how opacus forms the per-example
    clipped gradient (:mod:`dpsynth.privacy.grad_modes`)."""

    grad_sample_modes: ClassVar[tuple[str, ...]] = GRAD_SAMPLE_MODES

    batch_size: int | None = None
    epochs: float | None = None
    max_grad_norm: float = 1.0
    max_physical_batch_size: int = 512
    grad_sample_mode: str = "ghost"

    def __post_init__(self) -> None:
        check_grad_sample_mode(self.grad_sample_mode, allowed=self.grad_sample_modes)

    def get_params(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out
