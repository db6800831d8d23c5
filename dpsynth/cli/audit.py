"""``dpsynth audit`` (empirical epsilon lower bound) and ``dpsynth release`` (the release bundle)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dpsynth import safe_io
from dpsynth.cli.common import _friendly, _hold, api
from dpsynth.errors import DpsynthError


@click.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="A run from `dpsynth train`.")
@click.option("--canaries", type=int, default=1000, show_default=True, help="Canaries, each inserted with probability 1/2.")
@click.option("--method", type=click.Choice(["auto", "white-box", "black-box"]), default="auto", show_default=True,
              help="white-box: gradient canaries inside DP-SGD (dp-gan, dp-diffusion); black-box: outlier rows scored on synthetic data.")
@click.option("--confidence", type=float, default=0.95, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0)
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Result JSON (default internal_eval/RUN_NAME/audit.json beside the run; never inside it).")
@click.option("--on", "data_split", type=click.Choice(["holdout", "train"]), default="holdout", show_default=True,
              help="holdout: retrain on data not in the model's training split (costs the release nothing); "
                   "train: retrain on the training split and charge the audit's own ledger.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing result file.")
@_friendly
def audit(run_dir, canaries, method, confidence, seed, out, data_split, as_json, overwrite):
    """Empirical epsilon lower bound of a run's training (one audit run, Steinke et al. 2023).

    Retrains the run's generator once with its config and budget, with canaries, on the holdout
    split (default: not in the model's training split, so the release's epsilon is unchanged) or
    on the training split with its own audit ledger (--on train); the saved run is untouched.

    \b
    Example:
      dpsynth audit --run runs/actg175 --canaries 1000
    """
    if not Path(run_dir).is_dir():
        raise DpsynthError(f"model directory not found: {run_dir}")
    from dpsynth.reports.internal import default_internal_dir

    target = Path(out) if out is not None else default_internal_dir(run_dir) / "audit.json"
    _hold(safe_io.output_lock(target))
    safe_io.check_output_file(target, overwrite=overwrite, option="--out")
    result = api.audit(run=run_dir, canaries=canaries, method=method, seed=seed, confidence=confidence, out=out,
                       data_split=data_split)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    claimed = result["claimed_epsilon"]
    click.echo(f"audit ({result['method']}, {result['canaries']} canaries, {result['included']} inserted): "
               f"{result['correct']}/{result['guesses']} guesses correct")
    click.echo(f"empirical epsilon lower bound ({result['confidence']:.0%}): {result['epsilon_lower_bound']:.3f}  "
               f"claimed: {'inf (non-private reference)' if claimed is None else f'{claimed:.3f}'}  -> {result['verdict']}")
    click.echo(f"audit budget: {result['audit_budget']}")
    click.echo(f"written to {result['out']} in {result['seconds']:.1f}s")


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Release bundle directory to create.")
@click.option("--synthetic-rows", type=int, default=0, show_default=True,
              help="Also ship this many synthetic rows (or images) sampled from the model in BUNDLE/synthetic/.")
@click.option("--seed", type=int, default=0, help="Sampling seed for the synthetic data and the report's summary.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle directory.")
@click.option("--no-scan", is_flag=True, help="Skip the artifact scan (it needs the run's real data).")
@_friendly
def release(run_dir, out, synthetic_rows, seed, overwrite, no_scan):
    """Build a release bundle (what may leave the hospital) from a trained run.

    Verifies the run's manifest and ledger, refuses anything that is not DP (evaluation
    reports, audit results, data), copies weights, generator/config/schema files, ledger and
    privacy card, optionally samples synthetic data, writes a release report from DP outputs
    and public facts only, a manifest of SHA-256 hashes, and runs the artifact scanner.

    \b
    Example:
      dpsynth release runs/actg175 --out release/actg175 --synthetic-rows 5000
    """
    result = api.release(run=run_dir, out=out, synthetic_rows=synthetic_rows, seed=seed, overwrite=overwrite,
                         scan=not no_scan)
    from dpsynth.reports.readable import eps_text

    click.echo(f"release bundle {result.out}: epsilon={eps_text(result.epsilon)} (recomputed from the ledger), "
               f"{sum(1 for p in Path(result.out).rglob('*') if p.is_file())} files with SHA-256 in manifest.json")
    click.echo(f"artifact scan: {result.scan['status']}; findings: {len(result.scan['findings'])}")
    click.echo("release report: " + ", ".join(str(p) for p in result.report_files.values()))
