"""The DP-SGD engine: opacus' PrivacyEngine wired to the dpsynth ledger.

- Poisson sampling through opacus' DPDataLoader (``poisson_sampling=True`` always).
- The noise multiplier is calibrated so that the ledger's composed epsilon after the planned
  steps, *including what preprocessing already spent*, is at most the target.
- Each optimizer step that is really taken (not a BatchMemoryManager virtual step) advances the
  ledger's DP-SGD entry; the engine refuses a step that would cross the target.
- Modules are validated with opacus' ModuleValidator; secure RNG is available by flag.

There is no switch to turn DP off here: the non-private reference is a separate code path in
each generator (``Budget.non_private_reference()``) and is recorded as such in the ledger.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from opacus.utils.batch_memory_manager import BatchMemoryManager
from opacus.validators import ModuleValidator
from torch.utils.data import DataLoader, Dataset

from dpsynth.errors import PrivacyError
from dpsynth.privacy import distributed as dist
from dpsynth.privacy.accountants import calibrate_noise
from dpsynth.privacy.batched_data import batched
from dpsynth.privacy.bookkeeping import BookKeeping
from dpsynth.privacy.grad_modes import PerExampleLoss, check_grad_sample_mode
from dpsynth.privacy.ledger import Ledger, LedgerEntry


@dataclass(frozen=True)
class DPSGDPlan:
    """What a DP-SGD run will do, fixed before any real data is touched."""

    sample_rate: float
    steps: int
    max_grad_norm: float
    noise_multiplier: float

    def to_dict(self) -> dict:
        return {
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "max_grad_norm": self.max_grad_norm,
            "noise_multiplier": self.noise_multiplier,
        }


def validate_module(module: torch.nn.Module, *, name: str) -> None:
    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        raise PrivacyError(f"{name} is not DP-SGD compatible: {'; '.join(str(e) for e in errors)[:300]}")


def plan_dp_sgd(
    *, ledger: Ledger, n: int, batch_size: int, steps: int, max_grad_norm: float
) -> DPSGDPlan:
    """Calibrate the noise multiplier for ``steps`` Poisson-sampled steps of expected size ``batch_size``."""
    if ledger.target_epsilon is None:
        raise PrivacyError("DP-SGD needs a ledger with a target epsilon")
    if steps <= 0 or batch_size <= 0:
        raise PrivacyError(f"DP-SGD needs steps > 0 and batch_size > 0, got steps={steps}, batch_size={batch_size}")
    # opacus' Poisson loader samples each row with rate 1 / (batches per epoch): plan with that rate
    sample_rate = 1.0 / max(1, math.ceil(n / batch_size))
    sigma = calibrate_noise(
        base=ledger.gaussian_history(),
        base_rho=ledger.rho(),
        sample_rate=sample_rate,
        steps=steps,
        target_epsilon=ledger.target_epsilon,
        delta=ledger.accountant_delta(),
        accountant=ledger.accountant,
    )
    return DPSGDPlan(sample_rate=sample_rate, steps=steps, max_grad_norm=max_grad_norm, noise_multiplier=sigma)


def _batch_size_for(n: int, *, batches: int) -> int:
    """A loader batch size whose DataLoader has exactly ``batches`` batches over n rows (so that
    opacus' Poisson rate 1/len(loader) equals the planned rate), or the closest with fewer."""
    size = math.ceil(n / batches)
    while size > 1 and math.ceil(n / (size - 1)) <= batches:
        size -= 1
    while math.ceil(n / size) > batches:
        size += 1
    return size


class DPSGDEngine:
    """Makes one (module, optimizer, dataset) private under a plan, and charges each step.

    Generators do not drive it by hand: :class:`dpsynth.privacy.dpsgd_loop.DPSGDRun` (the one
    DP-SGD training loop) builds it, calls :meth:`make_private`, and runs the steps::

        engine = DPSGDEngine(ledger=ledger, plan=plan, purpose="discriminator", secure_mode=False)
        module, optimizer, loader = engine.make_private(module=d, optimizer=opt, dataset=ds, torch_rng=g)
        while engine.can_step():
            with engine.batches(loader, optimizer, max_physical_batch_size=512) as batches:
                for batch in batches:
                    ...engine.backward(per_example_losses)
                    engine.step(optimizer)    # or engine.step(optimizer, extra_grads=...)
    """

    def __init__(self, *, ledger: Ledger, plan: DPSGDPlan, purpose: str, secure_mode: bool = False) -> None:
        self.ledger = ledger
        self.plan = plan
        self.purpose = purpose
        self.secure_mode = secure_mode
        with warnings.catch_warnings():
            # opacus warns when secure RNG is off; the privacy card records secure_mode instead
            warnings.filterwarnings("ignore", message="Secure RNG turned off")
            try:
                self.privacy_engine = PrivacyEngine(accountant="rdp", secure_mode=secure_mode)
            except ImportError:
                raise PrivacyError(
                    "secure RNG (--secure-rng) needs opacus' optional 'torchcsprng' package, which is not installed"
                ) from None
        self.entry: LedgerEntry | None = None
        self.grad_sample_mode = "hooks"
        self.criterion = None  # ghost clipping: the criterion make_private returns (see backward)
        self.bookkeeping: BookKeeping | None = None  # grad_sample_mode "bk" (see backward)
        self.distributed = False

    def make_private(
        self, *, module: torch.nn.Module, optimizer: torch.optim.Optimizer, dataset: Dataset, torch_rng: torch.Generator,
        grad_sample_mode: str = "hooks", noise_generator: torch.Generator | None = None,
    ):
        """``grad_sample_mode="no_op"``: the caller computes per-example gradients itself (torch.func)
        and stores them in ``p.grad_sample`` before :meth:`step`; clipping and noise stay opacus'.
        ``noise_generator``: a generator on the parameters' device (defaults to ``torch_rng``)."""
        validate_module(module, name=self.purpose)
        if grad_sample_mode != "no_op":
            check_grad_sample_mode(grad_sample_mode)
        self.distributed = dist.is_distributed()
        self.grad_sample_mode = grad_sample_mode
        # book-keeping clipping rides on ghost mode's optimizer (reads the clipped sum from p.grad)
        opacus_mode = "ghost" if grad_sample_mode == "bk" else grad_sample_mode
        if self.distributed:  # opacus' DPDDP: make_private then returns a DistributedDPOptimizer
            module = dist.wrap_module(module)
        n = len(dataset)
        batch_size = _batch_size_for(n, batches=int(round(1.0 / self.plan.sample_rate)))
        dataset, collate = batched(dataset)  # one gather per batch instead of one fetch per row
        loader = DataLoader(dataset, batch_size=batch_size, generator=None if self.secure_mode else torch_rng,
                            collate_fn=collate)
        plain_loader = loader
        ghost = {"criterion": PerExampleLoss()} if opacus_mode == "ghost" else {}
        out = self.privacy_engine.make_private(
            module=module,
            optimizer=optimizer,
            data_loader=plain_loader,
            noise_multiplier=self.plan.noise_multiplier,
            max_grad_norm=self.plan.max_grad_norm,
            poisson_sampling=True,
            noise_generator=None if self.secure_mode else (torch_rng if noise_generator is None else noise_generator),
            grad_sample_mode=opacus_mode,
            **ghost,
        )
        if ghost:  # opacus returns (module, optimizer, criterion, loader) in ghost mode
            module, optimizer, self.criterion, loader = out
        else:
            module, optimizer, loader = out
        if grad_sample_mode == "bk":  # opacus' two-pass hooks off; its hooks_enabled flag still marks real rows
            module.remove_hooks()
            module.enable_hooks()
            self.criterion = None
            self.bookkeeping = BookKeeping(module, max_grad_norm=self.plan.max_grad_norm,
                                           enabled=lambda: module.hooks_enabled)
        self._optimizer = optimizer
        if self.distributed:
            loader = self._distributed_loader(plain_loader, loader, torch_rng)
        elif not self.secure_mode:
            # opacus seeds its Poisson sampler only in secure mode (else it draws from torch's global RNG);
            # rebuild the same Poisson loader on our seeded generator so a run is reproducible from its seed
            loader = DPDataLoader.from_data_loader(plain_loader, generator=torch_rng)
        # the loader's own sample rate (1 / len(loader)) is what opacus accounts; keep the ledger exact
        sample_rate = loader.sample_rate
        if sample_rate > self.plan.sample_rate * (1 + 1e-12):
            raise PrivacyError(f"{self.purpose}: loader sample rate {sample_rate:g} exceeds the planned {self.plan.sample_rate:g}")
        self.entry = self.ledger.open_dp_sgd(
            purpose=self.purpose,
            noise_multiplier=self.plan.noise_multiplier,
            sample_rate=sample_rate,
            params={"max_grad_norm": self.plan.max_grad_norm, "planned_steps": self.plan.steps, "poisson_sampling": True,
                    "secure_mode": self.secure_mode},
        )
        return module, optimizer, loader

    @property
    def steps_taken(self) -> int:
        return 0 if self.entry is None else self.entry.steps

    def can_step(self) -> bool:
        """False once the planned steps are done or one more step would cross the target."""
        if self.entry is None or self.entry.steps >= self.plan.steps:
            return False
        next_eps = self.ledger.epsilon(extra=(self.entry.noise_multiplier, self.entry.sample_rate, 1))
        return next_eps <= self.ledger.target_epsilon * (1 + 1e-9)

    def step(self, optimizer, *,
             extra_grads: Sequence[torch.Tensor | None] | Callable[[], Sequence[torch.Tensor | None]] | None = None,
             ) -> bool:
        """Clip, noise and apply one DP-SGD step; add data-independent ``extra_grads`` after noising
        (a callable is called only when the step is real: a virtual step discards nothing).

        Returns True when a real (non-virtual) step was taken and charged.
        """
        if not self.can_step():
            raise PrivacyError(f"{self.purpose}: a further DP-SGD step would cross epsilon={self.ledger.target_epsilon:g}")
        if not optimizer.pre_step():
            return False  # virtual step of BatchMemoryManager: gradients accumulate, nothing released
        if callable(extra_grads):
            extra_grads = extra_grads()
        if self.distributed:  # sum the ranks' clipped sums (noise came from rank 0 only), then mean
            optimizer.reduce_gradients()
            if extra_grads is not None:
                extra_grads = dist.average_gradients(extra_grads)
        if extra_grads is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            for p, g in zip(params, extra_grads):
                if g is not None:
                    p.grad = g.clone() if p.grad is None else p.grad + g
        optimizer.original_optimizer.step()
        self.ledger.record_step(self.entry)
        return True

    def backward(self, per_example_losses: torch.Tensor) -> None:
        """Backward pass of the DP-SGD loss from the per-example losses ``[B]``.

        In ghost mode the losses go through the criterion ``make_private`` returned (two backward
        passes; ``p.grad`` ends as the sum of clipped per-example gradients); a plain backward
        there would release the unclipped gradient. In ``bk`` mode one backward gives the
        clipped sum (:mod:`dpsynth.privacy.bookkeeping`). Other modes back-propagate the batch
        mean (opacus' ``loss_reduction="mean"``)."""
        if self.bookkeeping is not None:
            self.bookkeeping.backward(per_example_losses)
            return
        if self.criterion is not None:
            if per_example_losses.shape[0] == 0:  # empty Poisson batch: zero clipped sum
                for p in self._params():
                    p.grad = torch.zeros_like(p)
                return
            self.criterion(per_example_losses).backward()
            return
        per_example_losses.sum().div(max(1, per_example_losses.shape[0])).backward()

    def begin_batch(self) -> None:
        """Before the forward pass of a batch of real rows: no stale book-keeping records."""
        if self.bookkeeping is not None:
            self.bookkeeping.reset()

    def _params(self) -> list[torch.nn.Parameter]:
        return [p for group in self._optimizer.param_groups for p in group["params"]]

    def _distributed_loader(self, plain_loader: DataLoader, dp_loader: DataLoader, torch_rng: torch.Generator):
        """Poisson sampling of the global batch over this rank's shard (see privacy/distributed.py)."""
        rank, world = dist.rank_and_world()
        gen, shard_seed = dist.rank_generator(torch_rng, rank=rank, world_size=world)
        if self.secure_mode:  # the Poisson draws come from opacus' secure RNG, as in one process
            gen = self.privacy_engine.secure_rng
        sampler = dist.DistributedPoissonSampler(num_rows=len(plain_loader.dataset), sample_rate=dp_loader.sample_rate,
                                                 steps=len(dp_loader), generator=gen, shard_seed=shard_seed,
                                                 rank=rank, world_size=world)
        loader = DataLoader(plain_loader.dataset, batch_sampler=sampler, collate_fn=dp_loader.collate_fn)
        loader.sample_rate = dp_loader.sample_rate  # what opacus' accountant charges
        return loader

    @contextmanager
    def batches(self, loader: DataLoader, optimizer, *, max_physical_batch_size: int) -> Iterator[DataLoader]:
        """Physical batches of at most ``max_physical_batch_size`` over the Poisson loader."""
        with BatchMemoryManager(
            data_loader=loader, max_physical_batch_size=max_physical_batch_size, optimizer=optimizer
        ) as memory_safe_loader:
            yield memory_safe_loader

    def opacus_history(self) -> list:
        """opacus' own accountant history, for cross-checking the ledger."""
        return list(self.privacy_engine.accountant.history)
