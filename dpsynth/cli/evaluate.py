"""``dpsynth evaluate``: the internal evaluation of a run or of synthetic files."""

from __future__ import annotations

import json
import sys

import click

from dpsynth import safe_io
from dpsynth.cli.common import _friendly, _hold, api
from dpsynth.cli.generate import _print_quick
from dpsynth.errors import DpsynthError


def _print_relational(results: dict) -> None:
    rows = ", ".join(f"{k} {v['synthetic']}/{v['real']}" for k, v in results["rows"].items())
    click.echo(f"rows synthetic/real: {rows}")
    click.echo(f"referential integrity {results['referential_integrity']['value']:.3f}; synthetic keys equal to a"
               f" real key: {results['key_overlap_with_real']}")
    cpp = results["children_per_parent"]["tables"]
    click.echo("children per parent (TVD): " + ", ".join(f"{k} {v['tvd']:.3f}" for k, v in cpp.items()))
    for name, seq in results["sequences"]["tables"].items():
        click.echo(f"sequence {name}: length TVD {seq['length_tvd']:.3f}" + "".join(
            f", transitions of {c} {x['distance']:.3f}" for c, x in seq["transitions"].items()))
    chapters = results["code_chapters"]["columns"]
    if chapters:
        click.echo("code-chapter marginals (TVD): " + ", ".join(f"{k} {v['tvd']:.3f}" for k, v in chapters.items()))
    click.echo(f"epsilon {results['ledger']['epsilon']:.4f} (delta {results['ledger']['delta']:.3g}) for all tables")


@click.command()
@click.option("--run", "run_dir", type=click.Path(file_okay=False), default=None,
              help="A run from `dpsynth train`: its splits, schema and ledger are used.")
@click.option("--real", default=None, help="The full real table (embedded name or file), split with --split-seed.")
@click.option("--train", "train_path", type=click.Path(dir_okay=False), default=None, help="Real training split file.")
@click.option("--holdout", "holdout_path", type=click.Path(dir_okay=False), default=None, help="Real holdout split file.")
@click.option("--test", "test_path", type=click.Path(dir_okay=False), default=None, help="Real test split file.")
@click.option("--synthetic", type=click.Path(), default=None,
              help="Synthetic .csv/.parquet (with --run: default samples as many rows as the training split).")
@click.option("--schema", "schema_path", type=click.Path(dir_okay=False), default=None)
@click.option("--target", default=None, help="Target column for TSTR (default: the schema's target).")
@click.option("--split-seed", type=int, default=0, help="Split seed for --real without --run.")
@click.option("--quick", is_flag=True, help="Only TSTR vs TRTR AUROC and per-column distances (seconds, no report).")
@click.option("--shadow-models", type=int, default=0, show_default=True,
              help="Shadow-model attack: retrain the run's generator this many times (needs --run).")
@click.option("--thresholds", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Evaluation config / traffic-light thresholds YAML (see configs/evaluation_thresholds.yaml).")
@click.option("--internal-out", "--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Internal evaluation folder for report.json/.md/.html (real-data statistics; default with --run: "
                   "internal_eval/RUN_NAME beside the run; never inside a run or release).")
@click.option("--include-real-images", is_flag=True,
              help="Images: also show real test images in the internal report (off by default).")
@click.option("--seed", type=click.IntRange(min=0), default=0)
@click.option("--cnn-steps", "cnn_min_steps", type=click.IntRange(min=0), default=None,
              help="Image runs: minimum optimizer steps of each downstream CNN (default 600; 1200 scored higher on"
                   " validation splits at twice the time; a small value makes a quick check).")
@click.option("--json", "as_json", is_flag=True, help="Print every number as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --report folder.")
@_friendly
def evaluate(run_dir, real, train_path, holdout_path, test_path, synthetic, schema_path, target, split_seed, quick,
             shadow_models, config_path, report_dir, include_real_images, seed, cnn_min_steps, as_json, overwrite):
    """Evaluate synthetic data: utility, fidelity, membership-inference risk and subgroups.

    \b
    Examples:
      dpsynth evaluate --run runs/actg175                       # internal report in runs/internal_eval/actg175/
      dpsynth evaluate --real actg175 --synthetic synth.csv --target cens --quick
      dpsynth evaluate --train tr.csv --holdout ho.csv --test te.csv --synthetic syn.csv --schema s.yaml
    """
    from dpsynth.data.splits import SplitSpec

    if run_dir is not None and api.is_relational_run(run_dir):  # related tables
        rel = api.evaluate_relational(run=run_dir, synthetic=synthetic, seed=seed, report_dir=report_dir)
        if as_json:
            click.echo(json.dumps(rel.results, indent=2, default=str))
            return
        _print_relational(rel.results)
        click.echo("report (INTERNAL, stays inside): " + ", ".join(str(p) for p in rel.report_files.values()))
        return
    if cnn_min_steps is not None and run_dir is None:
        raise DpsynthError("--cnn-steps needs --run (an image run)")
    if report_dir is not None:  # one writer per report folder; an existing one only with --overwrite
        _hold(safe_io.output_lock(report_dir))
        safe_io.check_output_dir(report_dir, overwrite=overwrite, option="--report", markers=("report.json",),
                                 what="report folder")
    if quick:
        if synthetic is None:
            raise DpsynthError("--quick needs --synthetic")
        ev = api.evaluate_files(real=real, synthetic=synthetic, run=run_dir, target=target, schema_path=schema_path,
                                split=SplitSpec(seed=split_seed), report_dir=report_dir)
        if as_json:
            click.echo(json.dumps(ev, indent=2, default=str))
            return
        click.echo(f"synthetic rows: {ev['n_synthetic']}")
        _print_quick(ev)
        worst = ev["fidelity"]["breakdown"].get("worst_columns", [])
        if worst:
            click.echo(f"most different columns: {', '.join(worst)}")
        return
    if run_dir is not None:
        result = api.evaluate_run(run=run_dir, synthetic=synthetic, seed=seed, shadow_models=shadow_models,
                                  config_path=config_path, report_dir=report_dir,
                                  include_real_images=include_real_images, cnn_min_steps=cnn_min_steps)
    else:
        if synthetic is None:
            raise DpsynthError("evaluate needs --synthetic (or --run)")
        if shadow_models:
            raise DpsynthError("--shadow-models needs --run (the attack retrains the run's generator)")
        result = api.evaluate_explicit(real=real, train=train_path, holdout=holdout_path, test=test_path,
                                       synthetic=synthetic, schema_path=schema_path, split=SplitSpec(seed=split_seed),
                                       target=target, config_path=config_path, report_dir=report_dir, seed=seed)
    if as_json:
        click.echo(json.dumps(result.results, indent=2, default=str))
        return
    from dpsynth.modalities import by_name

    modality = by_name(result.results.get("meta", {}).get("modality", "table"))
    click.echo(modality.terminal_summary(result.results, color=sys.stdout.isatty()))
    if result.report_files:
        click.echo("report: " + ", ".join(str(p) for p in result.report_files.values()))
    click.echo(f"evaluated in {result.seconds:.1f}s")
