"""``train``: classify the source once, let its modality load, split and bound it, fit the
generator under the budget, and save weights, schema, ledger and run record atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dpsynth import modalities
from dpsynth.artifacts import save_run
from dpsynth.config import RunConfig, build_generator
from dpsynth.errors import DpsynthError, PrivacyError
from dpsynth.modalities.base import TrainOptions, torch_threads
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger


@dataclass
class TrainResult:
    run_dir: Path
    generator: Any
    ledger: Ledger
    schema: Any
    splits: Any
    fit_seconds: float
    engine: str = "numpy"  # duckdb / spark: the table stayed on disk, splits holds sizes only


def train(
    *,
    data: str,
    out: str | Path,
    config: RunConfig,
    schema_path: str | Path | None = None,
    infer_schema: bool = False,
    overwrite: bool = False,
    progress: Callable[[dict], None] | None = None,
    budget: Budget | None = None,
    engine: str | None = None,
    target: str | None = None,
    sensitive: Sequence[str] = (),
    clip_to_schema: bool = False,
    max_rows_per_unit: int | None = None,
) -> TrainResult:
    """Train a DP generator on ``data`` and save it to ``out`` (atomically).

    ``budget`` overrides ``config.privacy`` (the sweep passes ``Budget.non_private_reference()``
    for its explicitly named epsilon=inf reference cells). ``engine`` (auto, numpy, duckdb,
    spark): where the marginal generators count; see :mod:`dpsynth.scale.train`. ``target`` and ``sensitive`` name the
    outcome and the subgroup columns of an inferred schema (a declared schema says them itself).
    ``clip_to_schema`` clips every column onto the declared schema (as ``clip: true`` does per
    column) instead of refusing out-of-domain values; how many were clipped is not recorded.
    ``max_rows_per_unit``: the public bound k on rows per patient when the schema names a
    privacy-unit column (overrides the schema's)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DpsynthError(f"run directory {out} exists and is not empty (use --overwrite)")
    from dpsynth.workflows.related_tables import is_relational_schema

    if is_relational_schema(schema_path):  # related tables: one model per table, one patient-level ledger
        from dpsynth.relational.workflow import train_relational

        if budget is not None or max_rows_per_unit is not None or infer_schema:
            raise DpsynthError("related tables take their budget from the config and their bounds k from the"
                               " relational schema (max_per_parent); no --infer-schema")
        return train_relational(data=data, schema_path=schema_path, out=out, config=config, overwrite=overwrite,
                                progress=progress)
    budget = config.privacy.budget() if budget is None else budget
    generator = build_generator(config.generator, config.params)
    rng = np.random.default_rng(config.seed)
    modality = modalities.for_source(data, schema_path)
    if generator.modality != modality.name:
        raise DpsynthError(f"generator '{config.generator}' is for {generator.modality}s but {data} is {modality.noun}")
    options = TrainOptions(infer_schema=infer_schema, target=target, sensitive=tuple(sensitive),
                           clip_to_schema=clip_to_schema, max_rows_per_unit=max_rows_per_unit)
    modality.check_options(options)
    engine = modality.engine(engine, data=data, generator=config.generator, schema_path=schema_path, options=options)
    if engine != "numpy":
        if clip_to_schema:
            raise DpsynthError(f"--clip-to-schema is not supported with --engine {engine} (use --engine numpy)")
        return _train_streaming(data=data, out=out, config=config, generator=generator, budget=budget, rng=rng,
                                schema_path=schema_path, overwrite=overwrite, progress=progress, engine=engine)
    training = modality.training_set(data=data, schema_path=schema_path, config=config, budget=budget, rng=rng,
                                     options=options)
    start = time.perf_counter()
    with torch_threads(config.threads):
        generator.fit(training.data, budget=budget, rng=rng, ledger=training.ledger, progress=progress)
    fit_seconds = time.perf_counter() - start
    ledger = generator.ledger_
    check_spent(ledger, budget)
    run = modality.run_record(training, data=data, fit_seconds=fit_seconds, generator=generator)
    save_run(out, generator=generator, schema=training.schema, ledger=ledger, config=config.to_dict(), run=run,
             secure_mode=budget.secure_mode, overwrite=overwrite)
    return TrainResult(run_dir=out, generator=generator, ledger=ledger, schema=training.schema,
                       splits=training.splits, fit_seconds=fit_seconds)


def check_spent(ledger: Ledger, budget: Budget) -> None:
    """The composed epsilon never exceeds the target (an internal invariant, checked before saving)."""
    if not budget.non_private and ledger.epsilon() > budget.epsilon * (1 + 1e-9):
        raise PrivacyError(f"internal error: spent epsilon {ledger.epsilon():.4f} exceeds target {budget.epsilon}")


def _train_streaming(*, data, out, config, generator, budget, rng, schema_path, overwrite, progress,
                     engine) -> TrainResult:
    """A marginal generator fitted on a file counted by DuckDB/Spark (never loaded into pandas)."""
    from dpsynth.scale.train import fit_streaming

    done = fit_streaming(data=data, schema_path=schema_path, engine=engine, generator=generator, budget=budget,
                         rng=rng, split=config.split, progress=progress)
    ledger = generator.ledger_
    check_spent(ledger, budget)
    run = {"data": str(Path(data).resolve()), "split": done.splits.to_dict(), "n_train": len(done.splits.train),
           "fit_seconds": round(done.fit_seconds, 3), "schema_inferred_with_dp": False, "dp_plan": None,
           "engine": engine}
    save_run(out, generator=generator, schema=done.schema, ledger=ledger, config=config.to_dict(), run=run,
             secure_mode=budget.secure_mode, overwrite=overwrite)
    return TrainResult(run_dir=out, generator=generator, ledger=ledger, schema=done.schema, splits=done.splits,
                       fit_seconds=done.fit_seconds, engine=engine)
