"""Evaluating synthetic tables against the real splits: the quick subset (TSTR vs TRTR AUROC,
column distances) and the full suite with its internal report (utility, fidelity, privacy
attacks, subgroups). Everything here is computed from real rows: internal evaluation only."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.artifacts import LoadedRun
from dpsynth.config import build_generator
from dpsynth.data.loaders import read_table
from dpsynth.data.schema import Schema
from dpsynth.errors import DataError, DpsynthError
from dpsynth.modalities.base import EvaluationResult, torch_threads


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


MIN_EVALUATION_ROWS = 10


def check_evaluation_rows(frame: pd.DataFrame, *, what: str, minimum: int = MIN_EVALUATION_ROWS) -> None:
    """The full suite needs a few rows per table (3-fold cross-validation, nearest neighbours)."""
    if len(frame) < minimum:
        raise DataError(f"{what}: {len(frame)} row(s); the full evaluation needs at least {minimum} "
                        "(3-fold cross-validation, nearest-neighbour metrics); use --quick for a smaller table")


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
