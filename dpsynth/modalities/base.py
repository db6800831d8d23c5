"""The contract every modality (tables, images) implements, and what the workflows share.

A workflow (train, generate, evaluate, audit, release, sweep) is written once; the source is
classified once (:func:`dpsynth.modalities.for_source` / :func:`~dpsynth.modalities.for_run`)
and everything that differs between a table and an image set is a method of the modality."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch

from dpsynth.artifacts import LoadedRun
from dpsynth.config import RunConfig
from dpsynth.data.splits import SplitSpec
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with n intra-op torch threads and restore the previous setting (small MLPs run
    fastest single-threaded on small machines)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_split(loaded: LoadedRun) -> SplitSpec:
    """The split a saved run was trained with (recorded in its run.json)."""
    return SplitSpec(**{k: loaded.run["split"][k] for k in ("seed", "holdout", "test")})


@dataclass(frozen=True)
class TrainOptions:
    """What ``dpsynth train`` may say about the source beyond the config (tables use them all)."""

    infer_schema: bool = False
    target: str | None = None
    sensitive: Sequence[str] = ()
    clip_to_schema: bool = False
    max_rows_per_unit: int | None = None


@dataclass
class TrainingSet:
    """What a generator is fitted on: ``data`` (TableData / ImageData), the run's splits, the
    public schema saved with the run, and the run's ledger when preprocessing already charged it."""

    data: Any
    splits: Any
    schema: Any
    ledger: Ledger | None = None
    facts: dict = field(default_factory=dict)  # public facts for run.json (modality-specific)


@dataclass
class EvaluationResult:
    results: dict
    report_files: dict | None
    seconds: float


def scan_not_run(data, exc: BaseException) -> dict:
    """The scan result when the run's data cannot be read here (the bundle is still built)."""
    return {"status": f"not run: the run's data ({data}) is not reachable here ({str(exc).splitlines()[0]})",
            "findings": []}


class Modality(Protocol):
    """One kind of source. ``name`` equals the ``modality`` of the generators that fit it."""

    name: str  # "table" | "image"
    noun: str  # "a table" | "an image source" (for one-line errors)
    default_generator: str  # the CLI's generator when none is given
    writes_folders: bool  # an output path without a suffix is a folder of files (PNG + labels.csv)
    sweepable: bool  # `dpsynth sweep` grids over its generators
    quick_evaluates: bool  # one-shot `generate --data` prints a quick TSTR/fidelity check

    def check_options(self, options: TrainOptions) -> None:
        """Refuse training options that do not apply to this source (one line)."""

    def engine(self, requested: str | None, *, data: str, generator: str, schema_path, options: TrainOptions) -> str:
        """Where the generator counts: ``numpy`` (in memory) or a SQL engine over the file."""

    def training_set(self, *, data: str, schema_path, config: RunConfig, budget: Budget, rng: np.random.Generator,
                     options: TrainOptions) -> TrainingSet:
        """Resolve, load, validate and split the source; bound contributions; charge any DP
        preprocessing to the run's ledger."""

    def run_record(self, training: TrainingSet, *, data: str, fit_seconds: float, generator) -> dict:
        """run.json: the source, the split, public sizes and facts (never a real-data statistic)."""

    def recorded_splits(self, loaded: LoadedRun) -> tuple[Any, Any]:
        """A saved run's splits, recomputed from its recorded source and split, and the schema."""

    def row_bytes(self, schema) -> int:
        """Upper estimate of one output row or image on disk, from the public schema."""

    def write_samples(self, loaded: LoadedRun, *, n: int, out: Path, seed: int, conditions: Mapping | None,
                      threads: int, chunk_rows: int, balance, balance_target) -> None:
        """Sample n rows/images and write them atomically (nothing partial on failure)."""

    def evaluate_run(self, loaded: LoadedRun, *, run, synthetic, n: int | None, seed: int, shadow_models: int,
                     config_path, report_dir, include_real_images: bool) -> EvaluationResult:
        """The internal evaluation of a saved run (outside every run and release)."""

    def check_audit(self, loaded: LoadedRun, *, run) -> None:
        """Refuse (one line) a run the canary audit cannot retrain (the audit supports tables)."""

    def check_output_name(self, output: str | Path) -> None:
        """Refuse (one line) an output path this source's samples cannot be written to."""

    def terminal_summary(self, results: dict, *, color: bool) -> str:
        """The evaluation's summary for the terminal."""

    def write_release_sample(self, sample, *, rows: int, folder: Path, synthetic_format: str | None) -> Path:
        """The synthetic part of a release bundle."""

    def release_summary(self, sample, *, schema):
        """The release report's synthetic-data section (:class:`dpsynth.reports.release_report.SampleSummary`),
        computed from the DP sample and the public schema only."""

    def scan_release(self, bundle: Path, loaded: LoadedRun) -> dict:
        """The artifact scan of a bundle against the run's real training data."""
