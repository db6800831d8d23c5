"""``dpsynth train`` (and the training step of the one-shot ``dpsynth generate --data``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dpsynth import safe_io
from dpsynth.errors import DpsynthError
from dpsynth.cli.common import (LOSS_WARNING, _friendly, _hold, _Progress, _resolve_config, _training_options,
                                _verbose_losses_option, api)


def _train(data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode, config_path, seed,
           threads, out, overwrite, verbose_losses=False, echo=True, engine=None, *, split_seed=None,
           clip_to_schema=False, infer_target=None, infer_sensitive=None, max_rows_per_unit=None, init=None,
           autoencoder=None):
    if generator is None and config_path is None:  # tables: picked from public facts (generators/auto.py)
        generator = _default_generator(data, schema_path)
    config = _with_init(_resolve_config(config_path, generator=generator, epsilon=epsilon, delta=delta,
                                        accountant=accountant, secure_mode=secure_mode, seed=seed, threads=threads,
                                        split_seed=split_seed), init, autoencoder)
    sensitive = tuple(c.strip() for c in infer_sensitive.split(",") if c.strip()) if infer_sensitive else ()
    _hold(safe_io.output_lock(out))  # a second writer to the same run directory fails here
    safe_io.check_output_dir(out, overwrite=overwrite)
    if verbose_losses:
        click.echo(LOSS_WARNING, err=True)
    progress = _Progress(verbose_losses=verbose_losses)
    try:
        result = api.train(data=data, out=out, config=config, schema_path=schema_path, infer_schema=infer_schema,
                           overwrite=overwrite, progress=progress, engine=engine, target=infer_target,
                           sensitive=sensitive, clip_to_schema=clip_to_schema, max_rows_per_unit=max_rows_per_unit)
    finally:
        progress.close()
    if echo:
        _echo_trained(result, config.generator)
    if echo and api.is_relational_run(out):  # related tables: the per-table split of the one patient-level budget
        click.echo("budget split (patient level): " + ", ".join(
            f"{p.table} {p.budget_share:.0%} (<= {p.rows_per_patient} rows/patient)" for p in result.model.plans))
    return result


def _with_init(config, init, autoencoder=None):
    """``--init`` / ``--autoencoder``: the image generator's ``init`` (a public pretrained
    checkpoint) and ``autoencoder`` (a public autoencoder: latent DP diffusion) parameters."""
    extra = {k: str(v) for k, v in (("init", init), ("autoencoder", autoencoder)) if v}
    if not extra:
        return config
    from dataclasses import replace

    return replace(config, params={**config.params, **extra})


def _default_generator(data, schema_path) -> str | None:
    """The source's modality's default ('auto' for one table, dp-diffusion-image for images); None
    (the config's default) for related tables or a bad source (api.train then reports it in one line)."""
    try:
        if api.is_relational_schema(schema_path):
            return None
        return api.for_source(data, schema_path).default_generator
    except DpsynthError:
        return None


def _echo_trained(result, generator: str) -> None:
    click.echo(f"trained {generator} on {len(result.splits.train)} rows in {result.fit_seconds:.1f}s -> {result.run_dir}")
    if getattr(result.generator, "reason_", None):  # generator 'auto': what it picked and why
        click.echo(result.generator.reason_)
    click.echo("privacy ledger: " + result.ledger.summary())
    hint = _latent_hint(result.generator)
    if hint:
        click.echo(hint)


def _latent_hint(model) -> str | None:
    """A pixel-space dp-diffusion-image run at 64x64 or more on a CPU: where the latent path is."""
    schema = getattr(model, "schema_", None)
    if getattr(model, "name", None) != "dp-diffusion-image" or getattr(model, "autoencoder", None):
        return None
    if min(getattr(schema, "height", 0), getattr(schema, "width", 0)) < 64 or model._device().type != "cpu":
        return None
    return ("hint: at 64x64 and up a CPU step holds few images; the other CPU path is latent DP diffusion on a public"
            " autoencoder: dpsynth pretrain --generator autoencoder --public OTHER.npz ..., then train --autoencoder"
            " FOLDER (README, 'Larger images'; or a GPU)")


@click.command()
@_training_options
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option("--engine", type=click.Choice(["auto", "numpy", "duckdb", "spark"]), default="auto", show_default=True,
              help="Where aim/mst/independent (and auto) count marginals: DuckDB (auto for files of 2M+ rows) or Spark SQL over "
                   "the file, never loaded into memory; numpy loads it.")
@_verbose_losses_option
@click.option("--devices", type=click.IntRange(min=1), default=None,
              help="Data-parallel DP-SGD on N local processes (opacus DPDDP via torchrun; one GPU each when CUDA is "
                   "there, else gloo on CPU). Same epsilon as one process.")
@click.option("--max-rows-per-patient", "max_rows_per_unit", type=click.IntRange(min=1), default=None,
              help="Public bound k on rows per patient when the schema's privacy_unit names a patient-id column"
                   " (default: the schema's max_rows_per_unit, else 1); extra rows are dropped at random.")
@click.option("--init", "init", type=click.Path(file_okay=False, exists=True), default=None,
              help="Images: start from a public pretrained checkpoint (`dpsynth pretrain`, models/pretrained_*;"
                   " dp-merf-image also starts from a dp-gan-image one); recorded in the ledger as public (epsilon 0).")
@click.option("--autoencoder", "autoencoder", type=click.Path(file_okay=False, exists=True), default=None,
              help="dp-diffusion-image: DP-SGD on the latents of a public autoencoder (`dpsynth pretrain --generator"
                   " autoencoder`, models/public_autoencoder_*), samples decoded to pixels (latent DP diffusion, for"
                   " 64x64 and up on a CPU); recorded in the ledger as public (epsilon 0).")
@_friendly
def train(data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode, config_path, seed,
          split_seed, threads, clip_to_schema, infer_target, infer_sensitive, out, overwrite, engine, verbose_losses,
          devices, max_rows_per_unit, init, autoencoder):
    """Train a DP generator and save weights, config, schema, ledger and privacy card to OUT.

    \b
    Examples:
      dpsynth train --data actg175 --generator dp-gan --epsilon 1 --out runs/actg175
      dpsynth schema draft mytable.csv -o schema.yaml     # then fill the TODOs, set reviewed: true
      dpsynth train --data mytable.csv --schema schema.yaml --clip-to-schema --epsilon 1 --out runs/mine
      dpsynth train --data mytable.csv --infer-schema --target died --sensitive age,sex --epsilon 1 --out runs/mine
      dpsynth train --data actg175 --generator dp-gan --devices 2 --out runs/ddp   # or: torchrun ... -m dpsynth.cli train
      dpsynth train --data breastmnist.npz --generator dp-diffusion-image --epsilon 10 --out runs/breast
      dpsynth train --data breastmnist.npz --generator dp-diffusion-image --epsilon 10 \\
          --init models/pretrained_dp-diffusion-image_grey28_for-breastmnist --out runs/breast_pre

    Images need no config: steps, batch and noise are planned from n, the image size and the
    budget (dpsynth/privacy/image_schedule.py).
    """
    from dpsynth.privacy import distributed as dist

    if devices and devices > 1 and not dist.launched_by_torchrun():
        import subprocess

        sys.exit(subprocess.call(dist.torchrun_command(sys.argv[1:], devices=devices)))
    rank, _ = dist.init_from_env()
    if rank == 0:
        _train(data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode, config_path, seed,
               threads, out, overwrite, verbose_losses, engine=engine, split_seed=split_seed,
               clip_to_schema=clip_to_schema, infer_target=infer_target, infer_sensitive=infer_sensitive,
               max_rows_per_unit=max_rows_per_unit, init=init, autoencoder=autoencoder)
    else:  # the other replicas train in lock-step; only rank 0 writes the run directory
        import tempfile

        sensitive = tuple(c.strip() for c in infer_sensitive.split(",") if c.strip()) if infer_sensitive else ()
        with tempfile.TemporaryDirectory() as scratch:
            config = _with_init(_resolve_config(config_path, generator=generator, epsilon=epsilon, delta=delta,
                                                accountant=accountant, secure_mode=secure_mode, seed=seed,
                                                threads=threads, split_seed=split_seed), init, autoencoder)
            api.train(data=data, out=Path(scratch) / "run", config=config, schema_path=schema_path,
                      infer_schema=infer_schema, overwrite=True, progress=None, engine=engine, target=infer_target,
                      sensitive=sensitive, clip_to_schema=clip_to_schema, max_rows_per_unit=max_rows_per_unit)
    dist.shutdown()
