"""The plain Python API: train, generate, evaluate. The CLI calls these and nothing deeper.

Example::

    from dpsynth import api
    from dpsynth.config import RunConfig, PrivacyConfig
    result = api.train(data="actg175", out="runs/actg", config=RunConfig(privacy=PrivacyConfig(epsilon=1.0)))
    api.generate(model="runs/actg", n=10_000, out="synth.csv", seed=1)
    api.generate(model="runs/actg", n=10_000, out="balanced.csv", balance=["race", "gender"])
    api.audit(run="runs/actg")                      # empirical epsilon lower bound
    api.sweep(config="configs/sweep_actg175.yaml", out="sweeps/actg175")
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from dpsynth import safe_io
from dpsynth.artifacts import LoadedRun, load_run, save_run
from dpsynth.config import RunConfig, build_generator
from dpsynth.data.embedded import get_embedded
from dpsynth.data.loaders import is_embedded, load_source, read_table
from dpsynth.data.schema import Schema
from dpsynth.data.splits import SplitSpec, Splits, split_table
from dpsynth.data.table import TableData
from dpsynth.errors import DataError, DpsynthError, PrivacyError, SchemaError
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger

OUTPUT_SUFFIXES = (".csv", ".parquet")


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


# ---- data -------------------------------------------------------------------------------
def resolve_table(data: str, *, schema_path: str | Path | None = None,
                  clip_all: bool = False) -> tuple[pd.DataFrame, Schema]:
    """Load an embedded dataset or a CSV/Parquet file and validate it against its public schema
    (columns marked ``clip: true``, or all with ``clip_all``, are clipped first)."""
    frame, schema, _, _ = _resolve_table_full(data, schema_path=schema_path, clip_all=clip_all)
    return frame, schema


def resolve_table_clipped(data: str, *, schema_path: str | Path | None = None, clip_all: bool = False,
                          inferred: bool = False) -> tuple[pd.DataFrame, Schema, dict[str, int]]:
    """``resolve_table`` plus the number of clipped values per column: a real-data statistic
    for the internal evaluation only, never written into a run or a release. ``inferred``: the
    schema was estimated with DP, so cells are coerced as the inference did (text in a numeric
    column -> missing, integers rounded)."""
    frame, schema, counts, _ = _resolve_table_full(data, schema_path=schema_path, clip_all=clip_all,
                                                   inferred=inferred)
    return frame, schema, counts


def resolve_table_units(data: str, *, schema_path: str | Path | None = None, clip_all: bool = False
                        ) -> tuple[pd.DataFrame, Schema, np.ndarray | None]:
    """:func:`resolve_table` plus each row's privacy-unit code (None when the unit is a row).

    A row-level schema whose patient-id column repeats is refused (one line, naming the column)."""
    frame, schema, _, units = _resolve_table_full(data, schema_path=schema_path, clip_all=clip_all)
    return frame, schema, units


def _resolve_table_full(data: str, *, schema_path: str | Path | None = None, clip_all: bool = False,
                        inferred: bool = False) -> tuple[pd.DataFrame, Schema, dict[str, int], np.ndarray | None]:
    """The prepared table, its schema, the clip counts (internal only) and the privacy-unit codes."""
    from dpsynth.data.clip import prepare_clipped
    from dpsynth.privacy.contribution import check_row_level, unit_index

    raw = load_source(data, as_text=inferred)
    if schema_path is not None:
        schema = Schema.load(schema_path)
    elif is_embedded(data):
        schema = get_embedded(data).schema()
    else:
        raise DataError(
            f"{data}: no schema given. Declare the public domain with --schema schema.yaml "
            f"(write a draft with `dpsynth schema draft {data} -o schema.yaml`), or pass --infer-schema to estimate "
            "it with DP (charged to the budget)"
        )
    if inferred:
        from dpsynth.data.infer import coerce_cells

        raw = coerce_cells(raw, schema)
    check_row_level(raw, schema, source=str(data))
    unit = schema.unit_column
    if unit is not None and unit not in raw.columns:
        raise DataError(f"{data}: privacy-unit column '{unit}' named by schema '{schema.name}' is missing")
    units = unit_index(raw[unit]) if unit is not None else None
    frame, counts = prepare_clipped(raw, schema, all_columns=clip_all, source=str(data))
    if units is not None and len(units) != len(frame):
        raise DataError(f"{data}: rows were dropped while preparing a table with privacy-unit column '{unit}'")
    return frame, schema, counts, units


def resolve_splits(data: str, *, schema_path=None, split: SplitSpec, clip_all: bool = False) -> tuple[Splits, Schema]:
    """Splits of the prepared table; with a privacy-unit column all of a patient's rows fall in one split."""
    splits, schema, _ = resolve_splits_clipped(data, schema_path=schema_path, split=split, clip_all=clip_all)
    return splits, schema


def resolve_splits_clipped(data: str, *, schema_path=None, split: SplitSpec, clip_all: bool = False,
                           inferred: bool = False) -> tuple[Splits, Schema, dict[str, int]]:
    """``resolve_splits`` plus the clip counts (internal evaluation only)."""
    frame, schema, counts, units = _resolve_table_full(data, schema_path=schema_path, clip_all=clip_all,
                                                       inferred=inferred)
    try:
        return split_table(frame, split, units=units), schema, counts
    except DataError as exc:  # e.g. too few rows: name the file
        raise DataError(f"{data}: {exc}") from None


def require_reviewed(schema: Schema, source) -> None:
    """Training refuses a schema draft that nobody has reviewed (``reviewed: false``)."""
    if not schema.reviewed:
        raise SchemaError(
            f"{source}: this schema is an unreviewed draft (reviewed: false); check every kind, bound, category, "
            "the target and the sensitive flags against the data dictionary, then set reviewed: true"
        )


def training_data(splits: Splits, schema: Schema, *, seed: int, max_rows_per_unit: int | None = None) -> TableData:
    """The train split as the generator sees it: with a privacy-unit column, contributions are
    bounded to k rows per patient (k: ``max_rows_per_unit``, else the schema's, else
    ``contribution.DEFAULT_MAX_ROWS``), rows beyond k dropped by a rule seeded from ``seed``.
    The number of dropped rows is not returned or recorded."""
    from dpsynth.privacy.contribution import DEFAULT_MAX_ROWS, bound_contributions, check_max_rows, unit_index

    if splits.train_units is None:
        if max_rows_per_unit is not None and max_rows_per_unit != 1:
            raise DataError(f"--max-rows-per-patient needs a privacy-unit column: schema '{schema.name}' has"
                            f" privacy_unit '{schema.privacy_unit}' (one row per person)")
        return TableData(splits.train, schema)
    k = check_max_rows(max_rows_per_unit if max_rows_per_unit is not None
                       else schema.max_rows_per_unit if schema.max_rows_per_unit is not None else DEFAULT_MAX_ROWS)
    unit_key = "__privacy_unit__"
    train = splits.train.assign(**{unit_key: splits.train_units})
    bounded = bound_contributions(train, unit_column=unit_key, max_rows=k, rng=np.random.default_rng([seed, 13]))
    return TableData(bounded.drop(columns=unit_key).reset_index(drop=True), schema,
                     units=unit_index(bounded[unit_key].to_numpy()), max_rows_per_unit=k)


def run_split(loaded: LoadedRun) -> SplitSpec:
    """The split a saved run was trained with (recorded in its run.json)."""
    return SplitSpec(**{k: loaded.run["split"][k] for k in ("seed", "holdout", "test")})


def select_code_domains(data: TableData, *, budget: Budget, ledger: Ledger | None, rng: np.random.Generator
                        ) -> tuple[TableData, Schema, Ledger | None]:
    """For code columns with ``top_codes``: DP-select the kept fine categories (charged to the
    run's ledger, made here when none is given) and fold the rest into their chapters."""
    from dpsynth.privacy.code_selection import recode, select_codes, selection_columns
    from dpsynth.privacy.mechanisms import preprocessing_noise_multiplier

    if not selection_columns(data.schema):
        return data, data.schema, ledger
    if ledger is None:
        ledger = Ledger(delta=budget.resolve_delta(len(data.frame)), accountant=budget.accountant,
                        target_epsilon=None if budget.non_private else budget.epsilon)
    sigma = None if budget.non_private else preprocessing_noise_multiplier(budget, delta=ledger.delta)
    schema = select_codes(data.frame, data.schema, ledger=ledger, noise_multiplier=sigma or 0.0, rng=rng,
                          contribution=data.max_rows_per_unit, secure=budget.secure_mode, exact=budget.non_private)
    return (TableData(recode(data.frame, schema), schema, units=data.units, max_rows_per_unit=data.max_rows_per_unit),
            schema, ledger)


# ---- train ------------------------------------------------------------------------------
@dataclass
class TrainResult:
    run_dir: Path
    generator: Any
    ledger: Ledger
    schema: Schema
    splits: Splits
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
    image_data = is_image_source(data, schema_path)
    if (generator.modality == "image") != image_data:
        kind = "an image source" if image_data else "a table"
        raise DpsynthError(f"generator '{config.generator}' is for {generator.modality}s but {data} is {kind}")
    if image_data:
        return _train_images(data=data, out=out, config=config, generator=generator, budget=budget, rng=rng,
                             schema_path=schema_path, overwrite=overwrite, progress=progress)
    if (target or sensitive) and not infer_schema:
        raise DpsynthError("--target / --sensitive name the columns of an inferred schema (--infer-schema); "
                           "a declared schema sets 'target:' and 'sensitive: true' itself")
    from dpsynth.scale.train import resolve_engine

    engine = resolve_engine(engine, data=data, generator=config.generator, schema_path=schema_path,
                            infer_schema=infer_schema)
    if engine != "numpy":
        if clip_to_schema:
            raise DpsynthError(f"--clip-to-schema is not supported with --engine {engine} (use --engine numpy)")
        return _train_streaming(data=data, out=out, config=config, generator=generator, budget=budget, rng=rng,
                                schema_path=schema_path, overwrite=overwrite, progress=progress, engine=engine)
    if infer_schema:
        if schema_path is not None:
            raise DpsynthError("give either --schema or --infer-schema, not both")
        if budget.non_private:
            raise DpsynthError("--infer-schema needs a finite epsilon (its statistics are charged to the budget)")
        raw = load_source(data, as_text=True)  # no whole-file type inference: cells are classified one by one
        from dpsynth.privacy.unit_infer import infer_split  # per patient when a column name says patient id

        schema, splits, ledger = infer_split(raw, split=config.split, budget=budget, rng=rng, name=Path(data).stem,
                                             target=target, sensitive=tuple(sensitive),
                                             max_rows_per_unit=max_rows_per_unit)
    else:
        if schema_path is not None:
            require_reviewed(Schema.load(schema_path), schema_path)
        splits, schema = resolve_splits(data, schema_path=schema_path, split=config.split, clip_all=clip_to_schema)
        ledger = None
    n_train = len(splits.train)
    budget.resolve_delta(n_train)  # refuse delta >= 1/n before any work
    train_data = training_data(splits, schema, seed=config.seed, max_rows_per_unit=max_rows_per_unit)
    train_data, schema, ledger = select_code_domains(train_data, budget=budget, ledger=ledger, rng=rng)
    start = time.perf_counter()
    with torch_threads(config.threads):
        generator.fit(train_data, budget=budget, rng=rng, ledger=ledger, progress=progress)
    fit_seconds = time.perf_counter() - start
    ledger = generator.ledger_
    if not budget.non_private and ledger.epsilon() > budget.epsilon * (1 + 1e-9):
        raise PrivacyError(f"internal error: spent epsilon {ledger.epsilon():.4f} exceeds target {budget.epsilon}")
    run = {
        "data": data if is_embedded(data) else str(Path(data).resolve()),
        "split": splits.to_dict(),
        "n_train": n_train,
        "fit_seconds": round(fit_seconds, 3),
        "schema_inferred_with_dp": infer_schema,
        "clip_to_schema": bool(clip_to_schema),
        "dp_plan": getattr(generator, "dp_plan_", None),
    }
    if train_data.units is not None:  # the public bound only; how many rows it dropped is never recorded
        run["privacy_unit"] = {"column": schema.unit_column, "max_rows_per_unit": train_data.max_rows_per_unit}
    save_run(out, generator=generator, schema=schema, ledger=ledger, config=config.to_dict(), run=run,
             secure_mode=budget.secure_mode, overwrite=overwrite)
    return TrainResult(run_dir=out, generator=generator, ledger=ledger, schema=schema, splits=splits,
                       fit_seconds=fit_seconds)


def _train_streaming(*, data, out, config, generator, budget, rng, schema_path, overwrite, progress,
                     engine) -> TrainResult:
    """A marginal generator fitted on a file counted by DuckDB/Spark (never loaded into pandas)."""
    from dpsynth.scale.train import fit_streaming

    done = fit_streaming(data=data, schema_path=schema_path, engine=engine, generator=generator, budget=budget,
                         rng=rng, split=config.split, progress=progress)
    ledger = generator.ledger_
    if not budget.non_private and ledger.epsilon() > budget.epsilon * (1 + 1e-9):
        raise PrivacyError(f"internal error: spent epsilon {ledger.epsilon():.4f} exceeds target {budget.epsilon}")
    run = {"data": str(Path(data).resolve()), "split": done.splits.to_dict(), "n_train": len(done.splits.train),
           "fit_seconds": round(done.fit_seconds, 3), "schema_inferred_with_dp": False, "dp_plan": None,
           "engine": engine}
    save_run(out, generator=generator, schema=done.schema, ledger=ledger, config=config.to_dict(), run=run,
             secure_mode=budget.secure_mode, overwrite=overwrite)
    return TrainResult(run_dir=out, generator=generator, ledger=ledger, schema=done.schema, splits=done.splits,
                       fit_seconds=done.fit_seconds, engine=engine)


# ---- related tables ---------------------------------------------------------------------
def is_relational_schema(schema_path: str | Path | None) -> bool:
    """Whether ``schema_path`` is a relational schema (a YAML file with ``tables:``)."""
    from dpsynth.data.relational import is_relational_schema_file

    return is_relational_schema_file(schema_path)


def is_relational_run(model) -> bool:
    """Whether ``model`` is a run directory of related tables (it holds relational.yaml)."""
    from dpsynth.relational.workflow import is_relational_run as _is

    return not isinstance(model, LoadedRun) and _is(model)


def generate_relational(*, model: str | Path, out: str | Path, n: int | None = None, seed: int = 0,
                        fmt: str = "auto"):
    """Sample n patients with all their related rows; one file per table or one DuckDB/SQLite file."""
    from dpsynth.relational.workflow import generate_relational as _generate

    return _generate(model=model, out=out, n=n, seed=seed, fmt=fmt)


def evaluate_relational(*, run: str | Path, synthetic: str | Path | None = None, seed: int = 0,
                        report_dir: str | Path | None = None):
    """Integrity, children per parent, sequences and code-chapter marginals (INTERNAL report)."""
    from dpsynth.relational.workflow import evaluate_relational as _evaluate

    return _evaluate(run=run, synthetic=synthetic, seed=seed, report_dir=report_dir)


# ---- images -----------------------------------------------------------------------------
def is_image_source(data: str, schema_path: str | Path | None = None) -> bool:
    """A .npz file, a folder, or any source with an image schema (``modality: image``)."""
    if not is_embedded(data) and not Path(data).exists():
        raise DataError(f"data file not found: {data}")
    if schema_path is not None:
        from dpsynth.data.image_schema import ImageSchema, load_any_schema

        return isinstance(load_any_schema(schema_path), ImageSchema)
    path = Path(data)
    return path.suffix.lower() == ".npz" or path.is_dir()


@dataclass
class ImageSplits:
    train: Any
    holdout: Any
    test: Any

    def to_dict(self) -> dict:
        return {"n_train": len(self.train), "n_holdout": len(self.holdout), "n_test": len(self.test)}


def resolve_image_splits(data: str, *, schema_path=None, split: SplitSpec) -> ImageSplits:
    """The source's own train/val/test splits (val is the holdout); a source with only a train
    split is cut three ways with ``split`` (seeded, deterministic)."""
    from dpsynth.data.image_schema import load_any_schema
    from dpsynth.data.images import load_image_splits

    schema = load_any_schema(schema_path) if schema_path is not None else None
    parts = load_image_splits(data, schema=schema)
    if "val" in parts and "test" in parts:
        return ImageSplits(parts["train"], parts["val"], parts["test"])
    full = parts["train"]
    order = np.random.default_rng(split.seed).permutation(len(full))
    n_test, n_hold = int(round(split.test * len(full))), int(round(split.holdout * len(full)))
    pick = lambda idx: full.subset(np.sort(idx))  # noqa: E731
    return ImageSplits(pick(order[n_test + n_hold:]), pick(order[n_test:n_test + n_hold]), pick(order[:n_test]))


def _train_images(*, data, out, config, generator, budget, rng, schema_path, overwrite, progress) -> TrainResult:
    splits = resolve_image_splits(data, schema_path=schema_path, split=config.split)
    budget.resolve_delta(len(splits.train))
    start = time.perf_counter()
    with torch_threads(config.threads):
        generator.fit(splits.train, budget=budget, rng=rng, progress=progress)
    fit_seconds = time.perf_counter() - start
    run = {"data": str(Path(data).resolve()), "modality": "image",
           "split": {**config.split.to_dict(), **splits.to_dict(), "source_splits": "val/test from the source when present"},
           "n_train": len(splits.train), "fit_seconds": round(fit_seconds, 3), "dp_plan": getattr(generator, "dp_plan_", None)}
    save_run(out, generator=generator, schema=splits.train.schema, ledger=generator.ledger_, config=config.to_dict(),
             run=run, secure_mode=budget.secure_mode, overwrite=overwrite)
    return TrainResult(run_dir=out, generator=generator, ledger=generator.ledger_, schema=splits.train.schema,
                       splits=splits, fit_seconds=fit_seconds)


def generate_images(*, loaded: LoadedRun, n: int, out: Path, seed: int, conditions, threads: int) -> GenerateResult:
    """Sample images and write a MedMNIST-style .npz or a PNG folder with labels.csv (atomically)."""
    import shutil

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    with torch_threads(threads):
        syn = loaded.generator.sample(n, conditions=conditions, rng=rng)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}{out.suffix}"
    try:
        syn.save(tmp)
        if out.exists() and out.is_dir():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        safe_io.remove_path(tmp)
        raise
    return GenerateResult(out=out, rows=n, seconds=time.perf_counter() - start, ledger=loaded.ledger)


def evaluate_image_run(*, run: str | Path, synthetic: str | Path | None = None, n: int | None = None, seed: int = 0,
                       report_dir: str | Path | None = None, cnn_epochs: int = 10,
                       cnn_repeats: int = 3, include_real_images: bool = False) -> EvaluationResult:
    """Image metrics for a trained image run: CNN TSTR vs TRTR, domain FID, PRDC, attacks, grids.

    The report is internal (default ``internal_eval/<run name>/`` beside the run, never inside
    it); real images are shown only with ``include_real_images``."""
    from dpsynth.reports.internal import check_outside_runs, default_internal_dir

    from dpsynth.data.images import load_image_source
    from dpsynth.metrics.image import evaluate_images, save_image_grid
    from dpsynth.reports.image_report import write_image_report

    loaded = load_run(run)
    split = run_split(loaded)
    schema_file = Path(loaded.path) / "schema.yaml"
    splits = resolve_image_splits(loaded.run["data"], schema_path=schema_file, split=split)
    rng = np.random.default_rng(seed)
    if synthetic is not None:
        syn = load_image_source(synthetic, schema=loaded.schema)
    else:
        with torch_threads(1):
            syn = loaded.generator.sample(n or min(len(splits.train), 2000), rng=rng).to_image_data()
    start = time.perf_counter()
    with torch_threads(1):
        metrics = evaluate_images(splits.train, splits.holdout, splits.test, syn, classes=loaded.schema.classes,
                                  rng=rng, cnn_epochs=cnn_epochs, cnn_repeats=cnn_repeats)
    seconds = time.perf_counter() - start
    results = {"meta": {"modality": "image", "evaluate_seconds": round(seconds, 2), "n_synthetic": len(syn),
                        "n_train": len(splits.train)},
               "metrics": {k: v.to_dict() for k, v in metrics.items()}, "ledger": loaded.ledger.to_dict()}
    report_dir = check_outside_runs(default_internal_dir(loaded.path) if report_dir is None else report_dir)
    grid = save_image_grid(syn.images, report_dir / "synthetic_grid.png", labels=syn.labels)
    grids = {"synthetic": grid}
    if include_real_images:
        grids["real (test split)"] = save_image_grid(splits.test.images, report_dir / "real_grid.png",
                                                     labels=splits.test.labels)
    files = write_image_report(report_dir, results, grids=grids,
                               title=f"{loaded.generator.name} on {Path(loaded.run['data']).name}",
                               synthetic=syn, real=splits.test if include_real_images else None,
                               classes=loaded.schema.classes)
    return EvaluationResult(results=results, report_files=files, seconds=seconds)


# ---- generate ---------------------------------------------------------------------------
@dataclass
class GenerateResult:
    out: Path
    rows: int
    seconds: float
    ledger: Ledger


def parse_conditions(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise DpsynthError(f"condition '{pair}' must look like column=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def generate(
    *,
    model: str | Path | LoadedRun,
    n: int,
    out: str | Path,
    seed: int = 0,
    conditions: Mapping[str, Any] | None = None,
    chunk_rows: int = 200_000,
    threads: int = 1,
    balance: str | Sequence[str] | None = None,
    balance_target: str | Path | None = None,
    max_rows: int | None = None,
) -> GenerateResult:
    """Sample ``n`` rows from a saved model and write them to CSV/Parquet (streamed in chunks,
    written to a temporary file and renamed, so a failure leaves no partial output).

    ``balance`` (columns) asks for equal counts in every cell of their categories;
    ``balance_target`` (a YAML file) for a target distribution over cells; see
    :mod:`dpsynth.balance`. Both are post-processing of the model: no privacy cost.

    ``n`` is refused above ``max_rows`` (None: no cap) and when its estimated size does not fit
    the free space of ``out``'s disk."""
    if n <= 0:
        raise DpsynthError(f"number of rows must be > 0, got {n}")
    safe_io.check_rows(n, max_rows=max_rows)
    out = Path(out)
    loaded = model if isinstance(model, LoadedRun) else load_run(model, require_manifest=True)
    safe_io.check_free_space(out, need_bytes=n * _output_row_bytes(loaded.schema), what=f"{n} rows")
    if loaded.generator.modality == "image" and (balance or balance_target is not None):
        raise DpsynthError("--balance / --balance-file apply to table models only")
    if loaded.generator.modality == "image":
        return generate_images(loaded=loaded, n=n, out=out, seed=seed, conditions=conditions, threads=threads)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DpsynthError(f"{out}: output must end in .csv or .parquet")
    rebalance = bool(balance) or balance_target is not None
    if balance and balance_target is not None:
        raise DpsynthError("give either --balance or --balance-file, not both")
    if rebalance and conditions:
        raise DpsynthError("--condition cannot be combined with --balance / --balance-file")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    with torch_threads(threads):
        if rebalance:
            frame = balanced_sample(loaded, n=n, rng=rng, balance=balance, balance_target=balance_target)
            write_frame(frame, out)
        else:
            write_rows(loaded.generator, n=n, out=out, rng=rng, conditions=conditions, chunk_rows=chunk_rows)
    return GenerateResult(out=out, rows=n, seconds=time.perf_counter() - start, ledger=loaded.ledger)


def balanced_sample(loaded: LoadedRun, *, n: int, rng: np.random.Generator, balance=None,
                    balance_target=None) -> pd.DataFrame:
    """n rows with equal counts per cell of ``balance`` columns, or the shares of ``balance_target``."""
    from dpsynth.balance import balanced_frame, equal_cells, load_target, parse_balance_columns

    if balance_target is not None:
        cells = load_target(balance_target, loaded.schema)
    else:
        cells = equal_cells(loaded.schema, parse_balance_columns(balance))
    return balanced_frame(loaded.generator, n, cells, rng=rng)


@contextmanager
def _atomic_output(out: Path) -> Iterator[Path]:
    """A temporary sibling of ``out`` renamed into place on success and removed on any failure
    (signals included), so no partial output file is ever left behind."""
    with safe_io.atomic_file(out) as tmp:
        yield tmp


def _output_row_bytes(schema) -> int:
    """Upper estimate of one output row (table) or image on disk, from the public schema."""
    if hasattr(schema, "height"):
        return schema.height * schema.width * schema.channels * schema.storage_dtype.itemsize + 64
    return safe_io.table_row_bytes(schema.columns)


def write_frame(frame: pd.DataFrame, out: Path) -> None:
    """Write one frame to CSV/Parquet through a temporary file renamed into place."""
    with _atomic_output(out) as tmp:
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def write_rows(generator, *, n: int, out: Path, rng: np.random.Generator, conditions=None, chunk_rows: int) -> None:
    with _atomic_output(out) as tmp:
        if out.suffix.lower() == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            try:
                for start in range(0, n, chunk_rows):
                    frame = generator.sample(min(chunk_rows, n - start), conditions=conditions, rng=rng).frame
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(str(tmp), table.schema)
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
        else:
            for start in range(0, n, chunk_rows):
                frame = generator.sample(min(chunk_rows, n - start), conditions=conditions, rng=rng).frame
                frame.to_csv(tmp, mode="w" if start == 0 else "a", header=start == 0, index=False)


# ---- evaluate ---------------------------------------------------------------------------
def quick_evaluate(*, train: pd.DataFrame, holdout: pd.DataFrame, test: pd.DataFrame, synthetic: pd.DataFrame,
                   schema: Schema, target: str | None = None, seed: int = 0) -> dict:
    """TSTR vs TRTR AUROC and per-column marginal distance (the fast subset of the suite)."""
    from dpsynth.metrics.fidelity import ColumnShapes
    from dpsynth.metrics.utility import TSTRAUROC

    rng = np.random.default_rng(seed)
    results = {}
    target = target or schema.target
    if target is not None:
        if target not in schema:
            raise DataError(f"target '{target}' is not a column of schema '{schema.name}'")
        results["utility"] = TSTRAUROC(target=target).evaluate(train, holdout, synthetic, schema, test=test, rng=rng).to_dict()
    shapes = ColumnShapes().evaluate(train, holdout, synthetic, schema, test=test, rng=rng).to_dict()
    shapes["breakdown"].pop("histograms", None)
    results["fidelity"] = shapes
    return results


def load_synthetic(path: str | Path, schema: Schema) -> pd.DataFrame:
    frame = read_table(path)
    return schema.prepare(frame, source=str(path))


def evaluate_files(
    *,
    real: str | None,
    synthetic: str | Path,
    run: str | Path | None = None,
    target: str | None = None,
    schema_path: str | Path | None = None,
    split: SplitSpec | None = None,
    full: bool = False,
    report_dir: str | Path | None = None,
) -> dict:
    """Evaluate a synthetic file against the real data: the real table is split exactly as in
    the run (``--run``) or with ``split``; TSTR is scored on its test part."""
    loaded = load_run(run) if run is not None else None
    if loaded is not None:
        real = real or loaded.run.get("data")
        split = run_split(loaded)
        schema_path = schema_path or (Path(loaded.path) / "schema.yaml")
    if real is None:
        raise DpsynthError("evaluate needs --real (or --run, which records its data)")
    splits, schema, _ = resolve_splits_clipped(
        real, schema_path=schema_path, split=split or SplitSpec(),
        clip_all=bool(loaded is not None and loaded.run.get("clip_to_schema", False)),
        inferred=bool(loaded is not None and loaded.run.get("schema_inferred_with_dp", False)))
    syn = load_synthetic(synthetic, schema)
    results = quick_evaluate(train=splits.train, holdout=splits.holdout, test=splits.test, synthetic=syn,
                             schema=schema, target=target)
    results["n_synthetic"] = len(syn)
    if loaded is not None:
        results["ledger"] = loaded.ledger.to_dict()
    if report_dir is not None:
        from dpsynth.reports.internal import INTERNAL_NOTICE, check_outside_runs

        report_dir = check_outside_runs(report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        Path(report_dir, "report.json").write_text(json.dumps({"notice": INTERNAL_NOTICE, **results}, indent=2,
                                                              default=_json_default))
    return results


MIN_EVALUATION_ROWS = 10


def check_evaluation_rows(frame: pd.DataFrame, *, what: str, minimum: int = MIN_EVALUATION_ROWS) -> None:
    """The full suite needs a few rows per table (3-fold cross-validation, nearest neighbours)."""
    if len(frame) < minimum:
        raise DataError(f"{what}: {len(frame)} row(s); the full evaluation needs at least {minimum} "
                        "(3-fold cross-validation, nearest-neighbour metrics); use --quick for a smaller table")


@dataclass
class EvaluationResult:
    results: dict
    report_files: dict | None
    seconds: float


def evaluate_full(
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    test: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    loaded: LoadedRun | None = None,
    shadow_models: int = 0,
    config_path: str | Path | None = None,
    report_dir: str | Path | None = None,
    seed: int = 0,
    title: str | None = None,
    target: str | None = None,
    config: dict | None = None,
    synthetic_source: str | None = None,
    clipped: dict[str, int] | None = None,
    units: dict | None = None,
) -> EvaluationResult:
    """The full evaluation suite (utility, fidelity, privacy attacks, subgroups) and its report.

    ``shadow_models > 0`` runs the shadow-model attack, retraining the run's generator (same
    config and budget) that many times on shadow datasets drawn from train + holdout."""
    from dpsynth.metrics.suite import evaluate_table, load_evaluation_config, merge_config
    from dpsynth.reports.report import write_report

    if config is not None and config_path:
        raise DpsynthError("give an evaluation config as a file or as a dict, not both")
    for what, frame in (("real train split", train), ("real holdout split", holdout), ("real test split", test),
                        (synthetic_source or "synthetic data", synthetic)):
        check_evaluation_rows(frame, what=what)
    config = load_evaluation_config(config_path) if config_path else (merge_config(config) if config else {})
    if target is not None:
        if target not in schema:
            raise DataError(f"target '{target}' is not a column of schema '{schema.name}'")
        config.setdefault("utility", {})["target"] = target
    fit_sample = None
    claimed_eps = claimed_delta = None
    if loaded is not None:
        claimed_eps, claimed_delta = loaded.ledger.epsilon(), loaded.ledger.delta
        if shadow_models > 0:
            config.setdefault("privacy", {})["n_shadow"] = shadow_models
            fit_sample = _shadow_fit_sample(loaded)
    start = time.perf_counter()
    results = evaluate_table(train=train, holdout=holdout, test=test, synthetic=synthetic, schema=schema,
                             rng=np.random.default_rng(seed), config=config or None, fit_sample=fit_sample,
                             claimed_epsilon=None if claimed_eps is None or math.isinf(claimed_eps) else claimed_eps,
                             claimed_delta=claimed_delta, units=units)
    from dpsynth.metrics.support import unsupported_regions

    results["support"] = unsupported_regions(train, synthetic, schema)
    seconds = time.perf_counter() - start
    results.setdefault("meta", {})["evaluate_seconds"] = round(seconds, 2)
    results["meta"].update(column_descriptions={c.name: c.description for c in schema.columns if c.description},
                           privacy_unit=schema.privacy_unit, duration=schema.duration)
    if clipped:
        # real-data counts: this internal evaluation is their only home (never a run or a release)
        results["meta"]["clipped_values"] = {"by_column": dict(clipped), "total": int(sum(clipped.values())),
                                             "note": "real values clipped onto the public schema (clip: true / "
                                                     "--clip-to-schema); internal evaluation only"}
    files = None
    if report_dir is not None:
        from dpsynth.reports.privacy_card import privacy_card

        card = None
        if loaded is not None:
            card = privacy_card(loaded.ledger, generator=loaded.generator.name, n_train=loaded.run.get("n_train", 0),
                                privacy_unit=schema.privacy_unit,
                                secure_mode=bool(loaded.config.get("privacy", {}).get("secure_mode", False)))
        files = write_report(report_dir, results, ledger_dict=None if loaded is None else loaded.ledger.to_dict(),
                             privacy_card=card, title=title)
    return EvaluationResult(results=results, report_files=files, seconds=seconds)


def _shadow_fit_sample(loaded: LoadedRun):
    """Retrain the run's generator with its own config and budget: the shadow attack's model."""
    from dpsynth.config import config_from_dict

    from dpsynth.privacy.unit_audit import shadow_data

    config = config_from_dict(loaded.config, source=f"{loaded.path}/config.yaml")

    def fit_sample(frame: pd.DataFrame, rng: np.random.Generator, units=None) -> pd.DataFrame:
        gen = build_generator(config.generator, config.params)
        with torch_threads(config.threads):
            gen.fit(shadow_data(frame, units, loaded.schema, loaded.run, rng), budget=config.privacy.budget(), rng=rng)
            return gen.sample(len(frame), rng=rng).frame

    return fit_sample


def evaluate_run(*, run: str | Path, synthetic: str | Path | None = None, n: int | None = None, seed: int = 0,
                 shadow_models: int = 0, config_path=None, report_dir: str | Path | None = None,
                 include_real_images: bool = False) -> EvaluationResult:
    """Evaluate a trained run: its recorded splits, and ``synthetic`` (or n fresh rows sampled from it).

    The report is an internal evaluation: it goes to ``report_dir`` (default
    ``internal_eval/<run name>/`` beside the run), never inside a run or bundle."""
    from dpsynth.reports.internal import check_outside_runs, default_internal_dir

    from dpsynth.privacy.unit_audit import split_units

    loaded = load_run(run)
    if loaded.generator.modality == "image":
        return evaluate_image_run(run=run, synthetic=synthetic, n=n, seed=seed, report_dir=report_dir,
                                  include_real_images=include_real_images)
    split = run_split(loaded)
    data = loaded.run.get("data")
    if data is None:
        raise DpsynthError(f"{run}: run.json does not record its data source")
    splits, _, clipped = resolve_splits_clipped(data, schema_path=Path(loaded.path) / "schema.yaml", split=split,
                                                clip_all=bool(loaded.run.get("clip_to_schema", False)),
                                                inferred=bool(loaded.run.get("schema_inferred_with_dp", False)))
    if synthetic is not None:
        syn = load_synthetic(synthetic, loaded.schema)
    else:
        with torch_threads(1):
            syn = loaded.generator.sample(n or len(splits.train), rng=np.random.default_rng(seed + 1)).frame
    report_dir = check_outside_runs(default_internal_dir(loaded.path) if report_dir is None else report_dir)
    return evaluate_full(train=splits.train, holdout=splits.holdout, test=splits.test, synthetic=syn,
                         schema=loaded.schema, loaded=loaded, shadow_models=shadow_models, config_path=config_path,
                         report_dir=report_dir, seed=seed, title=f"{loaded.generator.name} on {data}",
                         synthetic_source=None if synthetic is None else str(synthetic), clipped=clipped,
                         units=split_units(splits))


def evaluate_explicit(*, real: str | None, train, holdout, test, synthetic, schema_path, split: SplitSpec,
                      target: str | None = None, config_path=None, report_dir=None, seed: int = 0) -> EvaluationResult:
    """Evaluate from files: either ``real`` (split with ``split``) or explicit train/holdout/test files."""
    explicit = [train, holdout, test]
    if real is not None and any(explicit):
        raise DpsynthError("give either --real or --train/--holdout/--test, not both")
    if real is not None:
        splits, schema = resolve_splits(real, schema_path=schema_path, split=split)
        parts = (splits.train, splits.holdout, splits.test)
    else:
        if not all(explicit):
            raise DpsynthError("evaluate needs --real, or all of --train, --holdout and --test")
        if schema_path is None:
            raise DpsynthError("evaluating explicit split files needs --schema")
        schema = Schema.load(schema_path)
        parts = tuple(schema.prepare(read_table(p), source=str(p)) for p in explicit)
    syn = load_synthetic(synthetic, schema)
    if report_dir is not None:
        from dpsynth.reports.internal import check_outside_runs

        report_dir = check_outside_runs(report_dir)
    return evaluate_full(train=parts[0], holdout=parts[1], test=parts[2], synthetic=syn, schema=schema,
                         config_path=config_path, report_dir=report_dir, seed=seed, target=target,
                         title=f"{Path(synthetic).name} vs {real or Path(train).name}", synthetic_source=str(synthetic))


# ---- audit ------------------------------------------------------------------------------
def run_budget(loaded: LoadedRun) -> Budget:
    """The budget a saved run was trained with (the non-private reference when its ledger says so)."""
    from dpsynth.config import config_from_dict

    if loaded.ledger.non_private:
        return Budget.non_private_reference()
    return config_from_dict(loaded.config, source=f"{loaded.path}/config.yaml").privacy.budget()


def audit(*, run: str | Path, canaries: int = 1000, method: str = "auto", seed: int = 0, confidence: float = 0.95,
          out: str | Path | None = None, data_split: str = "holdout") -> dict:
    """Empirical epsilon lower bound for a saved run (Steinke, Nasr and Jagielski 2023): retrain
    its generator with its config and budget once, with canaries.

    The audit is itself a training run on real data, so its result has a privacy cost of its own:
    ``data_split="holdout"`` (default) retrains on the run's holdout split, which is not in the
    released model's training split, so the audit costs the release nothing;
    ``data_split="train"`` retrains on the training split and charges the audit's own ledger,
    reported as ``audit_ledger`` (releasing model and audit together costs both epsilons).
    The saved run and its ledger are untouched. The result is internal: it is written to
    ``out`` (default ``internal_eval/<run name>/audit.json`` beside the run) and returned."""
    from dpsynth.config import config_from_dict
    from dpsynth.privacy.audit import audit_generator
    from dpsynth.reports.internal import INTERNAL_NOTICE, check_outside_runs, default_internal_dir

    if data_split not in ("holdout", "train"):
        raise DpsynthError(f"audit data must be 'holdout' or 'train', got '{data_split}'")
    loaded = load_run(run)
    data = loaded.run.get("data")
    if data is None:
        raise DpsynthError(f"{run}: run.json does not record its data source")
    if loaded.generator.modality != "table":
        raise DpsynthError(f"{run}: the audit supports table generators only (this run is {loaded.generator.modality})")
    if loaded.run.get("schema_inferred_with_dp"):
        raise DpsynthError(f"{run}: the audit needs a declared schema; this run inferred its schema with DP")
    out = check_outside_runs(default_internal_dir(loaded.path) / "audit.json" if out is None else out,
                             what="audit result")
    config = config_from_dict(loaded.config, source=f"{loaded.path}/config.yaml")
    split = run_split(loaded)
    splits, schema = resolve_splits(data, schema_path=Path(loaded.path) / "schema.yaml", split=split,
                                    clip_all=bool(loaded.run.get("clip_to_schema", False)))
    from dpsynth.privacy.unit_audit import audit_table_data, run_rows_per_unit

    audited = audit_table_data(splits, data_split, schema, max_rows=run_rows_per_unit(loaded.run, schema), seed=seed)
    frame = audited.frame
    generator = build_generator(config.generator, config.params)
    start = time.perf_counter()
    with torch_threads(config.threads):
        result = audit_generator(generator, audited, budget=run_budget(loaded),
                                 rng=np.random.default_rng(seed), canaries=canaries, method=method,
                                 confidence=confidence)
    audit_ledger = generator.ledger_
    audit_eps = audit_ledger.epsilon()
    result = {"notice": INTERNAL_NOTICE, **result}
    result["audit_data"] = data_split
    if data_split == "holdout":
        result["audit_budget"] = (f"the audit retrained on the holdout split ({len(frame)} rows), which is not in the "
                                  "released model's training split: it costs the release no epsilon")
    else:
        result["audit_budget"] = (f"the audit retrained on the released model's training split ({len(frame)} rows) and "
                                  f"spent its own epsilon={audit_eps:.3g} (audit ledger); releasing the audit result "
                                  "with the model costs both epsilons")
    result["audit_ledger"] = audit_ledger.to_dict()
    result["audit_epsilon"] = None if math.isinf(audit_eps) else audit_eps
    result["run"] = str(Path(run))
    result["run_epsilon"] = None if loaded.ledger.non_private else loaded.ledger.epsilon()
    result["seconds"] = round(time.perf_counter() - start, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=_json_default))
    result["out"] = str(out)
    return result


# ---- release ----------------------------------------------------------------------------
def release(*, run: str | Path, out: str | Path, synthetic_rows: int = 0, seed: int = 0, overwrite: bool = False,
            scan: bool = True):
    """Build a release bundle from a run: DP artifacts only, a release report, a manifest; see
    :mod:`dpsynth.release`. Refuses (one line, naming the file) anything that is not DP."""
    from dpsynth.release import build_release

    return build_release(run, out, synthetic_rows=synthetic_rows, seed=seed, overwrite=overwrite, scan=scan)


# ---- sweep ------------------------------------------------------------------------------
def sweep(*, config: str | Path, out: str | Path | None = None, progress: Callable[[dict], None] | None = None,
          retry_failed: bool = False):
    """Train and evaluate generators over a grid of epsilons and seeds (resumable); see :mod:`dpsynth.sweep`."""
    from dpsynth.sweep import load_sweep_config, run_sweep

    return run_sweep(load_sweep_config(config), out=out, progress=progress, retry_failed=retry_failed)


def _json_default(obj):
    if isinstance(obj, float) and math.isinf(obj):
        return "inf"
    if isinstance(obj, (np.generic,)):
        return obj.item()
    raise TypeError(type(obj).__name__)


# ---- federated --------------------------------------------------------------------------
def federated(*, config, out: str | Path, overwrite: bool = False, progress: Callable[[dict], None] | None = None,
              verbose: bool = False):
    """Federated DP training across sites on Flower (``pip install -e '.[federated]'``); ``config`` is a
    :class:`dpsynth.federated.config.FederatedConfig` or a YAML path. See :mod:`dpsynth.federated`."""
    from dpsynth.federated.config import load_federated_config
    from dpsynth.federated.workflow import run_federated

    if not hasattr(config, "sites"):
        config = load_federated_config(config)
    return run_federated(config=config, out=out, overwrite=overwrite, progress=progress, verbose=verbose)
