"""Data-parallel DP-SGD on opacus' DPDDP and DistributedDPOptimizer.

Run any DP-SGD generator on N processes (``torchrun --nproc_per_node N -m dpsynth.cli train ...``
or ``dpsynth train --devices N ...``): every process loads the same table, holds one replica of
the model and one shard of the rows, and :class:`~dpsynth.privacy.engine.DPSGDEngine` switches to
the distributed path when a ``torch.distributed`` process group is running:

- the private module is wrapped in opacus' ``DifferentiallyPrivateDistributedDataParallel``
  (replicas start from rank 0's weights), so ``make_private`` returns a
  ``DistributedDPOptimizer`` (or its ghost-clipping twin);
- Poisson sampling is over the *global* batch: :class:`DistributedPoissonSampler` gives each
  rank a fixed shard (a seeded permutation split ``rank::world``) and includes each of its rows
  independently with the planned rate q from a rank-specific generator. Every row of the table
  is thus in the logical batch with probability q, independently, exactly as in one process
  (the same accountant, the same epsilon). Unlike opacus' distributed sampler it yields empty
  batches too, so every rank takes every step and the all-reduce never waits;
- each rank clips its own examples; the clipped sums are all-reduced and **only rank 0 adds
  noise** (opacus' DistributedDPOptimizer), so the released gradient carries the noise once;
- gradients that read no real row (dp-gan's fake rows, its generator) are averaged over ranks
  (:func:`average_gradients`), which keeps the replicas identical (post-processing).

Only rank 0 writes run directories; every rank keeps the same ledger.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Iterable, Iterator, Sequence

import torch
from torch.utils.data import Sampler

from dpsynth.errors import ConfigError


def is_distributed() -> bool:
    """True while a torch.distributed process group of more than one process is running."""
    return (torch.distributed.is_available() and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1)


def rank_and_world() -> tuple[int, int]:
    if not is_distributed():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def refuse_data_parallel(*, generator: str, features: Sequence[str]) -> None:
    """One-line ConfigError when ``features`` (non-empty) are asked for in a data-parallel run
    (torchrun / --devices): they swap opacus' optimizer or Poisson loader for their own, which
    would bypass DPDDP's sharded global-batch sampling and its single noise draw."""
    if features and (is_distributed() or launched_by_torchrun()):
        raise ConfigError(f"{generator}: {' and '.join(features)} cannot run data-parallel (torchrun / --devices): "
                          f"they replace the distributed DP optimizer or loader; train on one process")


def init_from_env(*, backend: str | None = None, timeout_s: float = 600.0) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl with
    CUDA). Returns (rank, world size); (0, 1) when not launched by torchrun."""
    if not launched_by_torchrun():
        return 0, 1
    if not torch.distributed.is_available():
        raise ConfigError("this torch build has no torch.distributed; cannot train data-parallel")
    if not torch.distributed.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return rank_and_world()


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class DistributedPoissonSampler(Sampler[list]):
    """Poisson sampling of the global batch, one shard per rank (see the module docstring).

    ``generator`` must be specific to this rank (:func:`rank_generator`); ``shard_seed`` must be
    the same on every rank (it only decides which rank holds which row)."""

    def __init__(self, *, num_rows: int, sample_rate: float, steps: int, generator: torch.Generator,
                 shard_seed: int, rank: int, world_size: int) -> None:
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample rate must be in (0, 1], got {sample_rate}")
        self.num_rows, self.sample_rate, self.steps = num_rows, float(sample_rate), int(steps)
        self.generator = generator
        perm = torch.randperm(num_rows, generator=torch.Generator().manual_seed(int(shard_seed)))
        self.indices = perm[rank::world_size]

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list]:
        for _ in range(self.steps):
            mask = torch.rand(len(self.indices), generator=self.generator) < self.sample_rate
            yield self.indices[mask].tolist()


def rank_generator(torch_rng: torch.Generator, *, rank: int, world_size: int) -> tuple[torch.Generator, int]:
    """(a generator for this rank's Poisson draws, a shard seed shared by all ranks), both derived
    from the run's generator; the ranks' generators are seeded differently."""
    seeds = torch.randint(0, 2**62, (world_size + 1,), generator=torch_rng).tolist()
    return torch.Generator().manual_seed(int(seeds[1 + rank])), int(seeds[0])


def wrap_module(module: torch.nn.Module) -> torch.nn.Module:
    """opacus' DPDDP around ``module`` (broadcasts rank 0's weights to every replica)."""
    from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP

    return DPDDP(module)


def broadcast_module(module: torch.nn.Module) -> None:
    """Start a non-private module (dp-gan's generator) from rank 0's weights and buffers."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            torch.distributed.broadcast(t.data, 0)


def average_gradients(grads: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
    """Mean over ranks of gradients that read no real row (post-processing)."""
    if not is_distributed():
        return list(grads)
    world = torch.distributed.get_world_size()
    out = []
    for g in grads:
        if g is None:
            out.append(None)
            continue
        g = g.detach().clone()
        torch.distributed.all_reduce(g, op=torch.distributed.ReduceOp.SUM)
        out.append(g / world)
    return out


def average_param_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """In-place mean over ranks of ``p.grad`` (for the non-private generator of dp-gan)."""
    if not is_distributed():
        return
    params = [p for p in params if p.grad is not None]
    for p, g in zip(params, average_gradients([p.grad for p in params])):
        p.grad = g


def average_buffers(module: torch.nn.Module) -> None:
    """Mean over ranks of a non-private module's floating buffers (BatchNorm running statistics
    of dp-gan's generator, which each rank updates on its own fake rows)."""
    if not is_distributed():
        return
    world = torch.distributed.get_world_size()
    with torch.no_grad():
        for b in module.buffers():
            if b.is_floating_point():
                torch.distributed.all_reduce(b.data, op=torch.distributed.ReduceOp.SUM)
                b.data /= world


def torchrun_command(argv: Sequence[str], *, devices: int) -> list[str]:
    """The torchrun command that re-runs this ``dpsynth`` invocation (without ``--devices``) on
    ``devices`` local processes: ``python -m torch.distributed.run --standalone --nproc_per_node N
    -m dpsynth.cli ...``."""
    import sys

    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--devices":
            skip = True
            continue
        if arg.startswith("--devices="):
            continue
        rest.append(arg)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(devices)}",
            "-m", "dpsynth.cli", *rest]
