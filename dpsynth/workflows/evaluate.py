"""``evaluate``: a saved run through its modality's evaluation, or synthetic table files against
real ones (quick: TSTR/TRTR and column distances; full: the suite and its internal report)."""

from __future__ import annotations

import json
from pathlib import Path

from dpsynth import modalities
from dpsynth.artifacts import load_run
from dpsynth.data.loaders import read_table
from dpsynth.data.schema import Schema
from dpsynth.data.splits import SplitSpec
from dpsynth.errors import DpsynthError
from dpsynth.modalities.base import EvaluationResult, run_split
from dpsynth.modalities.table_eval import evaluate_full, load_synthetic, quick_evaluate
from dpsynth.modalities.table_source import resolve_splits, resolve_splits_clipped
from dpsynth.workflows.jsonio import json_default


def evaluate_run(*, run: str | Path, synthetic: str | Path | None = None, n: int | None = None, seed: int = 0,
                 shadow_models: int = 0, config_path=None, report_dir: str | Path | None = None,
                 include_real_images: bool = False, cnn_min_steps: int | None = None) -> EvaluationResult:
    """Evaluate a trained run: its recorded splits, and ``synthetic`` (or n fresh rows sampled from it).

    The report is an internal evaluation: it goes to ``report_dir`` (default
    ``internal_eval/<run name>/`` beside the run), never inside a run or bundle. ``cnn_min_steps``
    (image runs only): the downstream CNNs' minimum optimizer steps (default
    ``dpsynth.metrics.image_cnn.CNN_MIN_STEPS``)."""
    from dpsynth.errors import DpsynthError

    loaded = load_run(run)
    modality = modalities.for_run(loaded)
    extra = {}
    if cnn_min_steps is not None:
        if modality.name != "image":
            raise DpsynthError("--cnn-steps applies to image runs only")
        extra["cnn_min_steps"] = int(cnn_min_steps)
    return modality.evaluate_run(
        loaded, run=run, synthetic=synthetic, n=n, seed=seed, shadow_models=shadow_models, config_path=config_path,
        report_dir=report_dir, include_real_images=include_real_images, **extra)


def evaluate_image_run(*, run: str | Path, synthetic: str | Path | None = None, n: int | None = None, seed: int = 0,
                       report_dir: str | Path | None = None, cnn_epochs: int = 10,
                       cnn_repeats: int = 3, include_real_images: bool = False) -> EvaluationResult:
    """Image metrics for a trained image run: CNN TSTR vs TRTR, domain FID, PRDC, attacks, grids."""
    return modalities.by_name("image").evaluate_run(
        load_run(run), run=run, synthetic=synthetic, n=n, seed=seed, report_dir=report_dir, cnn_epochs=cnn_epochs,
        cnn_repeats=cnn_repeats, include_real_images=include_real_images)


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
                                                              default=json_default))
    return results


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
