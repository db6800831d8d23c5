"""The ``dpsynth`` command line. Each command calls :mod:`dpsynth.api` and nothing deeper.

Errors a user can cause (missing file, bad schema, impossible budget, ...) are printed as one
line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import click

from dpsynth import api
from dpsynth.errors import DpsynthError


def _friendly(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DpsynthError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; no partial output was written", err=True)
            sys.exit(130)

    return wrapper


def _positive_epsilon(ctx, param, value):
    if value is not None and not value > 0:
        raise click.BadParameter(f"epsilon must be > 0, got {value}")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dpsynth")
def main() -> None:
    """dpsynth: differentially private synthetic medical data.

    Train a DP generator on a real table, sample synthetic rows that may leave the building,
    and measure how useful, faithful and private they are. Every access to the real data is
    charged to one privacy ledger; the epsilon printed is the composed total.
    """


# ---- datasets -----------------------------------------------------------------------------
@main.command()
@click.argument("name", required=False)
@_friendly
def datasets(name: str | None) -> None:
    """List the embedded datasets, or print one's public schema (YAML)."""
    from dpsynth.data.embedded import EMBEDDED, get_embedded

    if name:
        import yaml

        click.echo(yaml.safe_dump(get_embedded(name).schema().to_dict(), sort_keys=False))
        return
    for ds in EMBEDDED.values():
        schema = ds.schema()
        click.echo(f"{ds.name}: {ds.description}")
        click.echo(f"  rows={ds.rows}  columns={len(schema.columns)}  target={schema.target}  "
                   f"sensitive={','.join(schema.sensitive)}  source=package '{ds.package}'")
        click.echo(f"  columns: {', '.join(f'{c.name}({c.kind})' for c in schema.columns)}")


@main.command()
@_friendly
def generators() -> None:
    """List the registered generators."""
    from dpsynth.generators import REGISTRY

    for name, cls in sorted(REGISTRY.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        click.echo(f"{name:20s} {getattr(cls, 'modality', 'table'):6s} {doc}")


# ---- shared training options --------------------------------------------------------------
def _training_options(fn):
    options = [
        click.option("--data", required=True, help="Embedded dataset name (see `dpsynth datasets`) or a .csv/.parquet file."),
        click.option("--schema", "--public-schema", "schema_path", type=click.Path(dir_okay=False), default=None,
                     help="Public schema YAML/JSON (kinds, bounds, categories). Required for files unless --infer-schema."),
        click.option("--infer-schema", is_flag=True, default=False,
                     help="Estimate bounds and categories of a file with DP mechanisms, charged to the budget."),
        click.option("--generator", "-g", default=None, help="Generator name (see `dpsynth generators`); default dp-gan."),
        click.option("--epsilon", type=float, default=None, callback=_positive_epsilon, help="Target epsilon (default 1)."),
        click.option("--delta", type=float, default=None, help="Target delta (default min(1e-5, 1/(10 n)); refused at >= 1/n)."),
        click.option("--accountant", type=click.Choice(["rdp", "prv"]), default=None, help="Privacy accountant (default rdp)."),
        click.option("--secure-rng", "secure_mode", is_flag=True, default=None, help="Use opacus' secure RNG for DP noise."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="Run config YAML (configs/)."),
        click.option("--seed", type=int, default=None, help="Seed for splits and training randomness (default 0)."),
        click.option("--threads", type=int, default=None, help="Torch threads (default 1: fastest for small MLPs)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _resolve_config(config_path, **overrides):
    from dpsynth.config import RunConfig, load_config

    base = load_config(config_path) if config_path else RunConfig()
    return base.with_overrides(**overrides)


class _Progress:
    """A tqdm bar showing step, losses and epsilon spent."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, info: dict) -> None:
        from tqdm import tqdm

        step = info.get("step", info.get("round"))
        if self.bar is None:
            self.bar = tqdm(total=info.get("steps", info.get("rounds")), desc="training",
                            unit="step" if "step" in info else "round", file=sys.stderr)
        if step is not None:
            self.bar.n = step
        eps = info.get("epsilon")
        skip = ("step", "steps", "round", "rounds", "epsilon")
        post = {k: (f"{v:.3f}" if isinstance(v, float) else str(v)[:24]) for k, v in info.items() if k not in skip}
        if eps is not None:
            post["eps"] = "inf" if math.isinf(eps) else f"{eps:.3f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _train(data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode, config_path, seed,
           threads, out, overwrite, max_rows_per_unit=None):
    config = _resolve_config(config_path, generator=generator, epsilon=epsilon, delta=delta, accountant=accountant,
                             secure_mode=secure_mode, seed=seed, threads=threads)
    progress = _Progress()
    try:
        result = api.train(data=data, out=out, config=config, schema_path=schema_path, infer_schema=infer_schema,
                           overwrite=overwrite, progress=progress, max_rows_per_unit=max_rows_per_unit)
    finally:
        progress.close()
    click.echo(f"trained {config.generator} on {len(result.splits.train)} rows in {result.fit_seconds:.1f}s -> {out}")
    click.echo("privacy ledger: " + result.ledger.summary())
    if api.is_relational_run(out):  # related tables: the per-table split of the one patient-level budget
        click.echo("budget split (patient level): " + ", ".join(
            f"{p.table} {p.budget_share:.0%} (<= {p.rows_per_patient} rows/patient)" for p in result.model.plans))
    return result


# ---- train --------------------------------------------------------------------------------
@main.command()
@_training_options
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option("--max-rows-per-patient", "max_rows_per_unit", type=click.IntRange(min=1), default=None,
              help="Public bound k on rows per patient when the schema's privacy_unit names a patient-id column"
                   " (default: the schema's max_rows_per_unit, else 1); extra rows are dropped at random.")
@_friendly
def train(data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode, config_path, seed,
          threads, out, overwrite, max_rows_per_unit):
    """Train a DP generator and save weights, config, schema, ledger and privacy card to OUT.

    \b
    Example:
      dpsynth train --data actg175 --generator dp-gan --epsilon 1 --out runs/actg175
    """
    _train(data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode, config_path, seed,
           threads, out, overwrite, max_rows_per_unit=max_rows_per_unit)


# ---- generate -----------------------------------------------------------------------------
@main.command()
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
@click.option("--seed", type=int, default=None, help="Sampling seed (default 0).")
@click.option("--condition", "conditions", multiple=True, help="column=value; repeatable. E.g. --condition race=1")
@click.option("--threads", type=int, default=None)
@click.option("--no-evaluate", is_flag=True, help="One-shot form: skip the TSTR summary.")
@click.option("--format", "fmt", type=click.Choice(["auto", "npz", "png", "csv", "parquet"]), default="auto",
              show_default=True,
              help="Images: .npz (MedMNIST keys) or a folder of PNGs with labels.csv; auto follows OUTPUT's suffix."
                   " Related tables written to a folder: csv (default) or parquet, one file per table.")
@click.option("--balance", default=None, metavar="COLS",
              help="Rebalanced release: equal counts per cell of these categorical columns, e.g. --balance race,gender.")
@click.option("--balance-file", type=click.Path(dir_okay=False), default=None,
              help="Rebalanced release: target shares per cell from a YAML file (cells: [{race: 0, gender: 1, share: 0.3}, ...]).")
@_friendly
def generate(model, data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode, config_path,
             run_dir, n, output, seed, conditions, threads, no_evaluate, fmt, balance, balance_file):
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
    if (model is None) == (data is None):
        raise DpsynthError("give exactly one of --model RUN_DIR or --data (one-shot: train, then sample)")
    image = api.is_image_source(data, schema_path) if data is not None else None
    if fmt == "png" and Path(output).suffix:
        raise DpsynthError(f"{output}: --format png writes a folder; give a path without a suffix")
    if fmt == "npz" and Path(output).suffix.lower() != ".npz":
        raise DpsynthError(f"{output}: --format npz needs an output ending in .npz")
    if image is False and Path(output).suffix.lower() not in api.OUTPUT_SUFFIXES:
        raise DpsynthError(f"{output}: output must end in .csv or .parquet")
    trained = None
    if data is not None:
        run_dir = run_dir or str(Path(output).with_suffix("")) + "_model"
        trained = _train(data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode,
                         config_path, seed, threads, run_dir, True)
        model = run_dir
    result = api.generate(model=model, n=n, out=output, seed=seed or 0,
                          conditions=api.parse_conditions(conditions), threads=threads or 1,
                          balance=balance, balance_target=balance_file)
    click.echo(f"wrote {result.rows} synthetic rows to {result.out} in {result.seconds:.2f}s")
    if balance or balance_file:
        click.echo(f"rebalanced release: {'equal counts per cell of ' + balance if balance else 'shares from ' + balance_file}"
                   " (post-processing, no privacy cost)")
    click.echo("privacy: " + result.ledger.summary().splitlines()[0])
    if trained is not None and not no_evaluate and not image and trained.schema.target is not None:
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


# ---- evaluate -----------------------------------------------------------------------------
@main.command()
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
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write report.json, report.md and report.html here (default with --run: RUN_DIR/report).")
@click.option("--seed", type=int, default=0)
@click.option("--json", "as_json", is_flag=True, help="Print every number as JSON.")
@_friendly
def evaluate(run_dir, real, train_path, holdout_path, test_path, synthetic, schema_path, target, split_seed, quick,
             shadow_models, config_path, report_dir, seed, as_json):
    """Evaluate synthetic data: utility, fidelity, membership-inference risk and subgroups.

    \b
    Examples:
      dpsynth evaluate --run runs/actg175                       # full report in runs/actg175/report/
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
                                  config_path=config_path, report_dir=report_dir)
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
    if result.results.get("meta", {}).get("modality") == "image":
        for name, m in result.results["metrics"].items():
            value = m["value"]
            click.echo(f"{name:32s} {value:.4f}" if isinstance(value, float) else f"{name:32s} {value}")
        click.echo(f"epsilon {result.results['ledger']['epsilon']} (delta {result.results['ledger']['delta']})")
    else:
        from dpsynth.reports.terminal import format_terminal_summary

        click.echo(format_terminal_summary(result.results, color=sys.stdout.isatty()))
    if result.report_files:
        click.echo("report: " + ", ".join(str(p) for p in result.report_files.values()))
    click.echo(f"evaluated in {result.seconds:.1f}s")


# ---- audit --------------------------------------------------------------------------------
@main.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="A run from `dpsynth train`.")
@click.option("--canaries", type=int, default=1000, show_default=True, help="Canaries, each inserted with probability 1/2.")
@click.option("--method", type=click.Choice(["auto", "white-box", "black-box"]), default="auto", show_default=True,
              help="white-box: gradient canaries inside DP-SGD (dp-gan, dp-diffusion); black-box: outlier rows scored on synthetic data.")
@click.option("--confidence", type=float, default=0.95, show_default=True)
@click.option("--seed", type=int, default=0)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Result JSON (default RUN_DIR/audit.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_friendly
def audit(run_dir, canaries, method, confidence, seed, out, as_json):
    """Empirical epsilon lower bound of a run's training (one audit run, Steinke et al. 2023).

    Retrains the run's generator once with its config and budget on its training split, with
    canaries; the saved run and its ledger are untouched.

    \b
    Example:
      dpsynth audit --run runs/actg175 --canaries 1000
    """
    result = api.audit(run=run_dir, canaries=canaries, method=method, seed=seed, confidence=confidence, out=out)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    claimed = result["claimed_epsilon"]
    click.echo(f"audit ({result['method']}, {result['canaries']} canaries, {result['included']} inserted): "
               f"{result['correct']}/{result['guesses']} guesses correct")
    click.echo(f"empirical epsilon lower bound ({result['confidence']:.0%}): {result['epsilon_lower_bound']:.3f}  "
               f"claimed: {'inf (non-private reference)' if claimed is None else f'{claimed:.3f}'}  -> {result['verdict']}")
    click.echo(f"written to {result['out']} in {result['seconds']:.1f}s")


# ---- sweep --------------------------------------------------------------------------------
class _SweepProgress:
    """A tqdm bar over cells, with the current cell and its training step in the postfix."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, info: dict) -> None:
        from tqdm import tqdm

        if info["event"] == "train":
            if self.bar is not None and info.get("steps"):
                self.bar.set_postfix_str(f"{info['label']} eps={info['epsilon']} seed={info['seed']} "
                                         f"step {info['step']}/{info['steps']}", refresh=False)
                self.bar.refresh()
            return
        if self.bar is None:
            self.bar = tqdm(total=info["cells"], desc="sweep", unit="cell", file=sys.stderr)
        where = f"{info['label']} eps={info['epsilon']} seed={info['seed']}"
        if info["status"] == "running":
            self.bar.set_postfix_str(where)
            return
        self.bar.update(1)
        if info["status"] in ("skipped", "failed"):
            self.bar.write(f"{info['status']}: {where}: {info.get('message', '')}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Sweep config YAML (see configs/sweep_actg175.yaml).")
@click.option("--out", "-o", type=click.Path(file_okay=False), default=None,
              help="Sweep directory (default: the config's 'out', else sweeps/CONFIG_STEM).")
@click.option("--retry-failed", is_flag=True, help="Recompute cells that failed before (finished cells are never recomputed).")
@_friendly
def sweep(config_path, out, retry_failed):
    """Train and evaluate generators over epsilons x seeds; resumable; writes sweep.json/.md/.html.

    Each finished cell (a run, its reports and cell.json) is kept; rerunning the same command
    skips finished cells, so nothing is retrained and no ledger is charged twice.

    \b
    Example:
      dpsynth sweep --config configs/sweep_actg175.yaml --out sweeps/actg175
    """
    progress = _SweepProgress()
    try:
        result = api.sweep(config=config_path, out=out, progress=progress, retry_failed=retry_failed)
    finally:
        progress.close()
    c = result.counts
    click.echo(f"sweep: {len(result.records)} cells ({c['computed']} computed, {c['reused']} already finished, "
               f"{c['skipped']} skipped, {c['failed']} failed) in {result.seconds:.1f}s -> {result.out}")
    for record in result.records:
        if record["status"] != "ok":
            click.echo(f"  {record['status']}: {record['label']} eps={record['epsilon']} seed={record['seed']}: "
                       f"{record.get('message', '')}")
    click.echo("report: " + ", ".join(str(p) for p in result.report_files.values()))


if __name__ == "__main__":  # pragma: no cover
    main()
