"""``dpsynth generate``: sample from a model (or train first with --data, the one-shot form)."""

from __future__ import annotations

from pathlib import Path

import click

from dpsynth import safe_io
from dpsynth.cli.common import _friendly, _hold, _positive_epsilon, _verbose_losses_option, api
from dpsynth.cli.train import _echo_trained, _train
from dpsynth.errors import DpsynthError


@click.command()
@click.option("--model", "-m", type=click.Path(), default=None, help="A run directory from `dpsynth train` (or models/NAME).")
@click.option("--data", default=None, help="One-shot form: train on this data first (then --epsilon etc. apply).")
@click.option("--schema", "schema_path", type=click.Path(dir_okay=False), default=None, help="Public schema (one-shot form).")
@click.option("--infer-schema", is_flag=True, default=False, help="DP schema estimation (one-shot form).")
@click.option("--generator", "-g", default=None, help="Generator name (one-shot form).")
@click.option("--epsilon", type=float, default=None, callback=_positive_epsilon, help="Target epsilon (one-shot form).")
@click.option("--delta", type=float, default=None, help="Target delta (one-shot form).")
@click.option("--accountant", type=click.Choice(["rdp", "prv"]), default=None)
@click.option("--secure-rng", "secure_mode", is_flag=True, default=None)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Where the one-shot form saves its model (default: OUTPUT stem + '_model').")
@click.option("-n", "--rows", "n", type=int, default=None,
              help="Number of synthetic rows (related tables: patients, default the run's training patients).")
@click.option("--output", "-o", "output", required=True, type=click.Path(),
              help="Output .csv or .parquet (related tables: a folder, a .duckdb or a .sqlite file).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Sampling seed (default 0).")
@click.option("--condition", "conditions", multiple=True, help="column=value; repeatable. E.g. --condition race=1")
@click.option("--threads", type=click.IntRange(1, 1024), default=None)
@click.option("--no-evaluate", is_flag=True, help="One-shot form: skip the TSTR summary.")
@click.option("--format", "fmt", type=click.Choice(["auto", "npz", "png", "csv", "parquet"]), default="auto",
              show_default=True,
              help="Images: .npz (MedMNIST keys) or a folder of PNGs with labels.csv; auto follows OUTPUT's suffix."
                   " Related tables written to a folder: csv (default) or parquet, one file per table.")
@click.option("--balance", default=None, metavar="COLS",
              help="Rebalanced release: equal counts per cell of these categorical columns, e.g. --balance race,gender;"
                   " images: --balance label (equal counts per class).")
@click.option("--balance-file", type=click.Path(dir_okay=False), default=None,
              help="Rebalanced release: target shares per cell from a YAML file (cells: [{race: 0, gender: 1, share: 0.3}, ...]).")
@click.option("--engine", type=click.Choice(["auto", "numpy", "duckdb", "spark"]), default="auto", show_default=True,
              help="One-shot form: where aim/mst/independent (and auto) count marginals (see `dpsynth train --help`).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT (and, one-shot, the model folder it saves).")
@click.option("--max-rows", type=click.IntRange(min=1), default=safe_io.DEFAULT_MAX_ROWS, show_default=True,
              help="Refuse -n above this (raise it on purpose for very large files; free disk space is checked too).")
@_verbose_losses_option
@_friendly
def generate(model, data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode, config_path,
             run_dir, n, output, seed, conditions, threads, no_evaluate, fmt, balance, balance_file, engine, overwrite,
             max_rows, verbose_losses):
    """Sample synthetic rows from a trained model (or train first with --data).

    \b
    Examples:
      dpsynth generate --model runs/actg175 -n 10000 -o synth.csv --seed 1
      dpsynth generate --data actg175 --epsilon 1 -n 10000 -o synth.csv
      dpsynth generate --model runs/actg175 -n 10000 -o balanced.csv --balance race,gender
    """
    if model is not None and data is None and api.is_relational_run(model):  # related tables
        if balance or balance_file or conditions:
            raise DpsynthError("--balance / --balance-file / --condition apply to single tables, not related tables")
        if n is not None and n <= 0:
            raise DpsynthError(f"-n must be > 0, got {n}")
        if Path(output).exists() and not overwrite:
            raise DpsynthError(f"{output} exists (use --overwrite to replace it)")
        _hold(safe_io.output_lock(output))  # a second writer to the same output fails here
        rel = api.generate_relational(model=model, out=output, n=n, seed=seed or 0, fmt=fmt)
        click.echo(f"wrote {', '.join(f'{k} {v}' for k, v in rel.rows.items())} synthetic rows to {rel.out}"
                   f" in {rel.seconds:.2f}s")
        click.echo("privacy: " + rel.ledger.summary().splitlines()[0])
        return
    if data is not None and api.is_relational_schema(schema_path):
        raise DpsynthError("related tables: train first (dpsynth train --schema ...), then generate --model RUN")
    if n is None:
        raise DpsynthError("-n is required (number of synthetic rows)")
    if fmt in ("csv", "parquet"):
        raise DpsynthError(f"--format {fmt} applies to related tables; a single table's format follows OUTPUT's suffix")
    if balance and balance_file:
        raise DpsynthError("give either --balance or --balance-file, not both")
    if n <= 0:
        raise DpsynthError(f"-n must be > 0, got {n}")
    safe_io.check_rows(n, max_rows=max_rows)
    if (model is None) == (data is None):
        raise DpsynthError("give exactly one of --model RUN_DIR or --data (one-shot: train, then sample)")
    modality = api.for_source(data, schema_path) if data is not None else None  # a saved run: known once loaded
    if fmt == "png" and Path(output).suffix:
        raise DpsynthError(f"{output}: --format png writes a folder; give a path without a suffix")
    if fmt == "npz" and Path(output).suffix.lower() != ".npz":
        raise DpsynthError(f"{output}: --format npz needs an output ending in .npz")
    if modality is not None:
        modality.check_output_name(output)
    png_folder = fmt == "png" or ((modality is None or modality.writes_folders) and not Path(output).suffix)
    _hold(safe_io.output_lock(output))  # a second writer to the same output fails here
    if png_folder:
        safe_io.check_output_dir(output, overwrite=overwrite, option="--output", markers=("labels.csv",),
                                 what="PNG folder")
    else:
        safe_io.check_output_file(output, overwrite=overwrite)
    trained = None
    new_run_dir = None
    if data is not None:
        run_dir = run_dir or str(Path(output).with_suffix("")) + "_model"
        new_run_dir = None if Path(run_dir).exists() else Path(run_dir)
        trained = _train(data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode,
                         config_path, seed, threads, run_dir, overwrite, verbose_losses, echo=False, engine=engine)
        model = run_dir
    try:
        result = api.generate(model=model, n=n, out=output, seed=seed or 0,
                              conditions=api.parse_conditions(conditions), threads=threads or 1,
                              balance=balance, balance_target=balance_file, max_rows=max_rows)
    except BaseException:
        if new_run_dir is not None:  # one-shot: nothing partial, not even the model it just trained
            safe_io.remove_path(new_run_dir)
        raise
    if trained is not None:  # reported once the whole one-shot command succeeded
        _echo_trained(trained, trained.generator.name)
    click.echo(f"wrote {result.rows} synthetic rows to {result.out} in {result.seconds:.2f}s")
    if balance or balance_file:
        click.echo(f"rebalanced release: {'equal counts per cell of ' + balance if balance else 'shares from ' + balance_file}"
                   " (post-processing, no privacy cost)")
    click.echo("privacy: " + result.ledger.summary().splitlines()[0])
    if trained is not None and trained.engine != "numpy" and not no_evaluate:
        click.echo(f"evaluation skipped: the table was counted on {trained.engine} and never loaded "
                   "(run `dpsynth evaluate` on a sample of held-out rows)")
    elif trained is not None and not no_evaluate and modality.quick_evaluates and trained.schema.target is not None:
        syn = api.load_synthetic(output, trained.schema)
        ev = api.quick_evaluate(train=trained.splits.train, holdout=trained.splits.holdout, test=trained.splits.test,
                                synthetic=syn, schema=trained.schema)
        _print_quick(ev)


def _print_quick(ev: dict) -> None:
    if "utility" in ev:
        b = ev["utility"]["breakdown"]
        tstr, trtr = b["tstr"]["selected"], b["trtr"]["selected"]
        click.echo(f"utility ({b['target']}, real test split): TSTR AUROC {tstr['auroc']:.3f} ({tstr['family']}) vs "
                   f"TRTR AUROC {trtr['auroc']:.3f} ({trtr['family']})  ratio {ev['utility']['value']:.3f}")
    f = ev["fidelity"]["breakdown"]
    click.echo(f"fidelity: mean column distance {ev['fidelity']['value']:.3f} (TVD categorical {f['mean_tvd']:.3f}, "
               f"KS numeric {f['mean_ks']:.3f})")
