"""Tables (CSV, Parquet, embedded data sets) as a modality: see :class:`dpsynth.modalities.base.Modality`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dpsynth.data.loaders import is_embedded, load_source
from dpsynth.data.schema import Schema
from dpsynth.errors import DpsynthError
from dpsynth.modalities.base import (EvaluationResult, TrainingSet, TrainOptions, run_split, scan_not_run,
                                     torch_threads)
from dpsynth.modalities.table_source import (require_reviewed, resolve_splits, resolve_splits_clipped,
                                             select_code_domains, training_data)


class Tables:
    name = "table"
    noun = "a table"
    default_generator = "auto"
    writes_folders = False
    sweepable = True
    quick_evaluates = True

    # ---- train ----------------------------------------------------------------------------
    def check_options(self, options: TrainOptions) -> None:
        if (options.target or options.sensitive) and not options.infer_schema:
            raise DpsynthError("--target / --sensitive name the columns of an inferred schema (--infer-schema); "
                               "a declared schema sets 'target:' and 'sensitive: true' itself")

    def engine(self, requested, *, data, generator, schema_path, options: TrainOptions) -> str:
        from dpsynth.scale.train import resolve_engine

        return resolve_engine(requested, data=data, generator=generator, schema_path=schema_path,
                              infer_schema=options.infer_schema)

    def training_set(self, *, data, schema_path, config, budget, rng, options: TrainOptions) -> TrainingSet:
        if options.infer_schema:
            if schema_path is not None:
                raise DpsynthError("give either --schema or --infer-schema, not both")
            if budget.non_private:
                raise DpsynthError("--infer-schema needs a finite epsilon (its statistics are charged to the budget)")
            raw = load_source(data, as_text=True)  # no whole-file type inference: cells are classified one by one
            from dpsynth.privacy.unit_infer import infer_split  # per patient when a column name says patient id

            schema, splits, ledger = infer_split(raw, split=config.split, budget=budget, rng=rng,
                                                 name=Path(data).stem, target=options.target,
                                                 sensitive=tuple(options.sensitive),
                                                 max_rows_per_unit=options.max_rows_per_unit)
        else:
            if schema_path is not None:
                require_reviewed(Schema.load(schema_path), schema_path)
            splits, schema = resolve_splits(data, schema_path=schema_path, split=config.split,
                                            clip_all=options.clip_to_schema)
            ledger = None
        budget.resolve_delta(len(splits.train))  # refuse delta >= 1/n before any work
        train_data = training_data(splits, schema, seed=config.seed, max_rows_per_unit=options.max_rows_per_unit)
        train_data, schema, ledger = select_code_domains(train_data, budget=budget, ledger=ledger, rng=rng)
        return TrainingSet(data=train_data, splits=splits, schema=schema, ledger=ledger,
                           facts={"schema_inferred_with_dp": options.infer_schema,
                                  "clip_to_schema": bool(options.clip_to_schema)})

    def run_record(self, training: TrainingSet, *, data, fit_seconds: float, generator) -> dict:
        run = {
            "data": data if is_embedded(data) else str(Path(data).resolve()),
            "split": training.splits.to_dict(),
            "n_train": len(training.splits.train),
            "fit_seconds": round(fit_seconds, 3),
            **training.facts,
            "dp_plan": getattr(generator, "dp_plan_", None),
        }
        if training.data.units is not None:  # the public bound only; how many rows it dropped is never recorded
            run["privacy_unit"] = {"column": training.schema.unit_column,
                                   "max_rows_per_unit": training.data.max_rows_per_unit}
        return run

    # ---- a saved run ----------------------------------------------------------------------
    def recorded_splits(self, loaded):
        """The run's splits as trained (clipped / coerced as at training), its schema and the clip
        counts (a real-data statistic: internal evaluation only)."""
        return resolve_splits_clipped(loaded.run.get("data"), schema_path=Path(loaded.path) / "schema.yaml",
                                      split=run_split(loaded), clip_all=bool(loaded.run.get("clip_to_schema", False)),
                                      inferred=bool(loaded.run.get("schema_inferred_with_dp", False)))

    def check_audit(self, loaded, *, run) -> None:
        if loaded.run.get("schema_inferred_with_dp"):
            raise DpsynthError(f"{run}: the audit needs a declared schema; this run inferred its schema with DP")

    # ---- generate -------------------------------------------------------------------------
    def row_bytes(self, schema) -> int:
        from dpsynth import safe_io

        return safe_io.table_row_bytes(schema.columns)

    def write_samples(self, loaded, *, n, out: Path, seed, conditions, threads, chunk_rows, balance,
                      balance_target) -> None:
        from dpsynth.modalities.table_writers import OUTPUT_SUFFIXES, balanced_sample, write_frame, write_rows

        if out.suffix.lower() not in OUTPUT_SUFFIXES:
            raise DpsynthError(f"{out}: output must end in .csv or .parquet")
        rebalance = bool(balance) or balance_target is not None
        if balance and balance_target is not None:
            raise DpsynthError("give either --balance or --balance-file, not both")
        if rebalance and conditions:
            raise DpsynthError("--condition cannot be combined with --balance / --balance-file")
        rng = np.random.default_rng(seed)
        with torch_threads(threads):
            if rebalance:
                frame = balanced_sample(loaded, n=n, rng=rng, balance=balance, balance_target=balance_target)
                write_frame(frame, out)
            else:
                write_rows(loaded.generator, n=n, out=out, rng=rng, conditions=conditions, chunk_rows=chunk_rows)

    # ---- evaluate -------------------------------------------------------------------------
    def evaluate_run(self, loaded, *, run, synthetic, n, seed, shadow_models, config_path, report_dir,
                     include_real_images=False) -> EvaluationResult:
        from dpsynth.modalities.table_eval import evaluate_full, load_synthetic
        from dpsynth.reports.internal import check_outside_runs, default_internal_dir

        data = loaded.run.get("data")
        if data is None:
            raise DpsynthError(f"{run}: run.json does not record its data source")
        from dpsynth.privacy.unit_audit import split_units

        splits, _, clipped = self.recorded_splits(loaded)
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

    def check_output_name(self, output) -> None:
        from dpsynth.modalities.table_writers import OUTPUT_SUFFIXES

        if Path(output).suffix.lower() not in OUTPUT_SUFFIXES:
            raise DpsynthError(f"{output}: output must end in .csv or .parquet")

    def terminal_summary(self, results: dict, *, color: bool) -> str:
        from dpsynth.reports.terminal import format_terminal_summary

        return format_terminal_summary(results, color=color)

    # ---- release --------------------------------------------------------------------------
    def release_summary(self, sample, *, schema):
        from dpsynth.reports.release_report import table_sample_summary

        return table_sample_summary(sample, schema)

    def write_release_sample(self, sample, *, rows: int, folder: Path, synthetic_format: str | None) -> Path:
        suffix = ".parquet" if synthetic_format == "parquet" else ".csv"
        path = folder / f"synthetic{suffix}"
        frame = sample.frame.iloc[:rows]
        frame.to_parquet(path, index=False) if suffix == ".parquet" else frame.to_csv(path, index=False)
        return path

    def scan_release(self, bundle: Path, loaded) -> dict:
        """Training rows in weights and text files, exact real statistics in text files."""
        from dpsynth.privacy.artifact_scan import real_statistics, scan_for_statistics, scan_run_for_rows

        data = loaded.run.get("data")
        try:
            splits, schema = resolve_splits(data, schema_path=Path(loaded.path) / "schema.yaml",
                                            split=run_split(loaded))
        except (DpsynthError, OSError, TypeError) as exc:
            return scan_not_run(data, exc)
        findings = scan_run_for_rows(bundle, splits.train, schema, skip=("synthetic/",))
        stats = real_statistics(splits.train, schema)
        findings += scan_for_statistics(bundle, stats)
        return {"status": f"scanned for the {len(splits.train)} training rows and {len(stats)} exact real statistics",
                "findings": findings}
