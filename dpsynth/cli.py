"""The ``dpsynth`` command line. Each command calls :mod:`dpsynth.api` and nothing deeper.

Errors a user can cause (missing file, bad schema, impossible budget, ...) are printed as one
line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from pathlib import Path

import click

from dpsynth import safe_io
from dpsynth.errors import DpsynthError


class _LazyModule:
    """``dpsynth.api`` imported on first use, inside a command: ``dpsynth --help`` and
    ``import dpsynth.cli`` stay free of torch, opacus, mbi and the metrics stack."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        import importlib

        return getattr(importlib.import_module(self._name), attr)


api = _LazyModule("dpsynth.api")


def _friendly(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with safe_io.signals_raise():
                return fn(*args, **kwargs)
        except DpsynthError as exc:
            click.echo(f"error: {_one_line(exc)}", err=True)
            sys.exit(2)
        except safe_io.Terminated as exc:
            click.echo(f"terminated by {exc}; no partial output was written", err=True)
            sys.exit(128 + exc.signum)
        except KeyboardInterrupt:
            click.echo("interrupted; no partial output was written", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except OSError as exc:  # disk full, permission denied, ...: the user's environment, not a bug
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            click.echo(f"error: {where}{exc.strerror or _one_line(exc)}", err=True)
            sys.exit(2)
        except Exception as exc:  # a bug: one line, exit 1; DPSYNTH_TRACEBACK=1 shows the traceback
            if os.environ.get("DPSYNTH_TRACEBACK"):
                raise
            click.echo(f"internal error ({type(exc).__name__}: {_one_line(exc)}); "
                       "rerun with DPSYNTH_TRACEBACK=1 and report it", err=True)
            sys.exit(1)

    return wrapper


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[:1]) if text else type(exc).__name__


def _hold(resource):
    """Enter a context manager (an output lock) until the command ends, error or not."""
    return click.get_current_context().with_resource(resource)


def _positive_epsilon(ctx, param, value):
    if value is not None and not value > 0:
        raise click.BadParameter(f"epsilon must be > 0, got {value}")
    return value


class _OneLineUsageError(click.UsageError):
    """A command-line mistake printed as one line (no usage block), exit code 2."""

    def show(self, file=None) -> None:
        hint = f" (see `{self.ctx.command_path} -h`)" if self.ctx is not None else ""
        click.echo(f"error: {self.format_message()}{hint}", err=True)


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None


def _one_line_usage(exc: click.UsageError) -> click.UsageError:
    if isinstance(exc, (_OneLineUsageError, getattr(click.exceptions, "NoArgsIsHelpError", ()))):
        return exc  # plain `dpsynth` still prints the help
    return _OneLineUsageError(exc.format_message(), ctx=exc.ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    """List the embedded datasets and the built-in image schemas, or print one's public schema (YAML)."""
    from dpsynth.data.embedded import EMBEDDED, get_embedded
    from dpsynth.data.image_catalog import describe_image_schemas, image_schema_yaml

    if name and image_schema_yaml(name) is not None:
        click.echo(image_schema_yaml(name))
        return
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
    for line in describe_image_schemas():
        click.echo(line)


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
        click.option("--data", required=True, help="Embedded dataset name (see `dpsynth datasets`), a .csv/.parquet "
                     "table, or images: a MedMNIST-style .npz (pneumoniamnist/breastmnist/retinamnist.npz need no "
                     "schema), a folder of PNG/JPEG + labels.csv, or a DICOM folder + labels.csv (folders: --schema)."),
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
        click.option("--seed", type=click.IntRange(min=0), default=None,
                     help="Seed for training randomness: noise, batches, weights (default 0); the split uses --split-seed."),
        click.option("--split-seed", type=click.IntRange(min=0), default=None,
                     help="Seed of the train/holdout/test split (default: the config's split.seed, 0)."),
        click.option("--threads", type=click.IntRange(1, 1024), default=None, help="Torch threads (default 1: fastest for small MLPs)."),
        click.option("--clip-to-schema", is_flag=True, default=False,
                     help="Clip values outside the schema's bounds and map unlisted categories to the column's "
                          "'other' level (as clip: true per column) instead of refusing the file."),
        click.option("--target", "infer_target", default=None,
                     help="With --infer-schema: the outcome column (binary) for TSTR/TRTR."),
        click.option("--sensitive", "infer_sensitive", default=None, metavar="COLS",
                     help="With --infer-schema: subgroup columns, comma-separated (e.g. age,sex,race)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _resolve_config(config_path, **overrides):
    from dpsynth.config import RunConfig, load_config

    base = load_config(config_path) if config_path else RunConfig()
    return base.with_overrides(**overrides)


_PUBLIC_PROGRESS = ("selected", "sigma", "cells")  # DP outputs (AIM/MST selections, noise scale)
LOSS_WARNING = ("warning: --verbose-losses prints losses computed on real training batches; they are NOT "
                "differentially private: keep these logs inside, never with a release")


def _verbose_losses_option(fn):
    return click.option("--verbose-losses", is_flag=True, default=False,
                        help="Show training losses in the progress bar (computed on real batches: not DP).")(fn)


class _Progress:
    """A tqdm bar showing step and epsilon spent, plus DP outputs (AIM/MST selections); losses on
    real batches only with ``verbose_losses`` (they are not DP)."""

    def __init__(self, verbose_losses: bool = False) -> None:
        self.bar = None
        self.verbose_losses = verbose_losses

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
        post = {k: (f"{v:.3f}" if isinstance(v, float) else str(v)[:24]) for k, v in info.items()
                if k not in skip and (self.verbose_losses or k in _PUBLIC_PROGRESS)}
        if eps is not None:
            post["eps"] = "inf" if math.isinf(eps) else f"{eps:.3f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _train(data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode, config_path, seed,
           threads, out, overwrite, verbose_losses=False, echo=True, engine=None, *, split_seed=None,
           clip_to_schema=False, infer_target=None, infer_sensitive=None, max_rows_per_unit=None, init=None):
    config = _with_init(_resolve_config(config_path, generator=generator, epsilon=epsilon, delta=delta,
                                        accountant=accountant, secure_mode=secure_mode, seed=seed, threads=threads,
                                        split_seed=split_seed), init)
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


def _with_init(config, init):
    """``--init``: the image generator's ``init`` parameter (a public pretrained checkpoint)."""
    if not init:
        return config
    from dataclasses import replace

    return replace(config, params={**config.params, "init": str(init)})


def _echo_trained(result, generator: str) -> None:
    click.echo(f"trained {generator} on {len(result.splits.train)} rows in {result.fit_seconds:.1f}s -> {result.run_dir}")
    click.echo("privacy ledger: " + result.ledger.summary())


# ---- train --------------------------------------------------------------------------------
@main.command()
@_training_options
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option("--engine", type=click.Choice(["auto", "numpy", "duckdb", "spark"]), default="auto", show_default=True,
              help="Where aim/mst/independent count marginals: DuckDB (auto for files of 2M+ rows) or Spark SQL over "
                   "the file, never loaded into memory; numpy loads it.")
@_verbose_losses_option
@click.option("--devices", type=click.IntRange(min=1), default=None,
              help="Data-parallel DP-SGD on N local processes (opacus DPDDP via torchrun; one GPU each when CUDA is "
                   "there, else gloo on CPU). Same epsilon as one process.")
@click.option("--max-rows-per-patient", "max_rows_per_unit", type=click.IntRange(min=1), default=None,
              help="Public bound k on rows per patient when the schema's privacy_unit names a patient-id column"
                   " (default: the schema's max_rows_per_unit, else 1); extra rows are dropped at random.")
@click.option("--init", "init", type=click.Path(file_okay=False, exists=True), default=None,
              help="Images: start DP-SGD from a public pretrained checkpoint (`dpsynth pretrain`, models/pretrained_*);"
                   " recorded in the ledger as public (epsilon 0).")
@_friendly
def train(data, schema_path, infer_schema, generator, epsilon, delta, accountant, secure_mode, config_path, seed,
          split_seed, threads, clip_to_schema, infer_target, infer_sensitive, out, overwrite, engine, verbose_losses,
          devices, max_rows_per_unit, init):
    """Train a DP generator and save weights, config, schema, ledger and privacy card to OUT.

    \b
    Examples:
      dpsynth train --data actg175 --generator dp-gan --epsilon 1 --out runs/actg175
      dpsynth schema draft mytable.csv -o schema.yaml     # then fill the TODOs, set reviewed: true
      dpsynth train --data mytable.csv --schema schema.yaml --clip-to-schema --epsilon 1 --out runs/mine
      dpsynth train --data mytable.csv --infer-schema --target died --sensitive age,sex --epsilon 1 --out runs/mine
      dpsynth train --data actg175 --generator dp-gan --devices 2 --out runs/ddp   # or: torchrun ... -m dpsynth.cli train
      dpsynth train --data breastmnist.npz --generator dp-diffusion-image --epsilon 10 --out runs/breast
      dpsynth train --data breastmnist.npz --generator dp-diffusion-image --epsilon 10 \
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
               max_rows_per_unit=max_rows_per_unit, init=init)
    else:  # the other replicas train in lock-step; only rank 0 writes the run directory
        import tempfile

        sensitive = tuple(c.strip() for c in infer_sensitive.split(",") if c.strip()) if infer_sensitive else ()
        with tempfile.TemporaryDirectory() as scratch:
            config = _with_init(_resolve_config(config_path, generator=generator, epsilon=epsilon, delta=delta,
                                                accountant=accountant, secure_mode=secure_mode, seed=seed,
                                                threads=threads, split_seed=split_seed), init)
            api.train(data=data, out=Path(scratch) / "run", config=config, schema_path=schema_path,
                      infer_schema=infer_schema, overwrite=True, progress=None, engine=engine, target=infer_target,
                      sensitive=sensitive, clip_to_schema=clip_to_schema, max_rows_per_unit=max_rows_per_unit)
    dist.shutdown()


# ---- pretrain (public images, no privacy) ---------------------------------------------------
@main.command()
@click.option("--public", "public", multiple=True, required=True, type=click.Path(dir_okay=False, exists=True),
              help="A PUBLIC MedMNIST-style .npz (repeat for several); never the private set you fine-tune on.")
@click.option("--generator", "-g", type=click.Choice(["dp-diffusion-image", "dp-gan-image"]), default="dp-diffusion-image",
              show_default=True)
@click.option("--shape", required=True, metavar="CxHxW", help="Target shape of the private set, e.g. 1x28x28 or 3x64x64.")
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True, help="Non-private Adam steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Run config whose params (architecture) the fine-tuning run will use.")
@click.option("--licence", "licences", multiple=True, metavar="STEM=LICENCE",
              help="Licence of a source that is not a known MedMNIST set, e.g. mydata=CC-BY-4.0.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1, 1024), default=1, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Checkpoint folder to create.")
@_friendly
def pretrain(public, generator, shape, steps, batch_size, config_path, licences, seed, threads, out):
    """Pretrain an image generator WITHOUT privacy on public images (then `train --init OUT`).

    \b
    Example (leave the private set out: BreastMNIST is fine-tuned from the others):
      dpsynth pretrain --public pneumoniamnist.npz --public retinamnist.npz --shape 1x28x28 \\
          --out models/pretrained_dp-diffusion-image_grey28_for-breastmnist
      dpsynth train --data breastmnist.npz --generator dp-diffusion-image --epsilon 10 \\
          --init models/pretrained_dp-diffusion-image_grey28_for-breastmnist --out runs/breast
    """
    import torch

    from dpsynth.generators.image_pretrain import pretrain_image_generator

    try:
        dims = tuple(int(v) for v in shape.lower().split("x"))
        assert len(dims) == 3 and dims[0] in (1, 3) and min(dims) > 0
    except (ValueError, AssertionError):
        raise DpsynthError(f"--shape {shape!r}: expected CxHxW with C 1 or 3, e.g. 1x28x28") from None
    params = {}
    if config_path:
        from dpsynth.config import load_config

        cfg = load_config(config_path)
        params = {k: v for k, v in cfg.params.items() if k not in ("steps", "batch_size", "epochs", "init")}
    lic = dict(item.split("=", 1) for item in licences if "=" in item)
    torch.set_num_threads(threads)
    path = pretrain_image_generator(generator=generator, public=public, shape=dims, out=out, steps=steps,
                                    batch_size=batch_size, seed=seed, params=params, licences=lic)
    click.echo(f"pretrained {generator} on public images -> {path} (see {path}/DATASHEET.md)")


# ---- schema -------------------------------------------------------------------------------
@main.group()
def schema() -> None:
    """Public schemas: write a draft for your own table."""


@schema.command("draft")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Draft schema YAML to write.")
@click.option("--target", default=None, help="Prefill the outcome column.")
@click.option("--sensitive", default=None, metavar="COLS", help="Prefill subgroup columns, comma-separated.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
@_friendly
def schema_draft(data, out, target, sensitive, overwrite):
    """Write a commented schema draft for DATA (.csv/.parquet) from its header and storage types only.

    Bounds and category lists are TODOs to fill from the data dictionary (never from the data);
    the draft says `reviewed: false`, and training refuses it until you set `reviewed: true`.

    \b
    Example:
      dpsynth schema draft mytable.csv -o schema.yaml
    """
    from dpsynth.data.draft import draft_schema

    cols = tuple(c.strip() for c in sensitive.split(",") if c.strip()) if sensitive else ()
    path = draft_schema(data, out, target=target, sensitive=cols, overwrite=overwrite)
    click.echo(f"wrote a schema draft to {path}: fill every TODO from the documentation, review the guessed kinds, "
               "the target and the sensitive flags, then set reviewed: true")


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
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Sampling seed (default 0).")
@click.option("--condition", "conditions", multiple=True, help="column=value; repeatable. E.g. --condition race=1")
@click.option("--threads", type=click.IntRange(1, 1024), default=None)
@click.option("--no-evaluate", is_flag=True, help="One-shot form: skip the TSTR summary.")
@click.option("--format", "fmt", type=click.Choice(["auto", "npz", "png", "csv", "parquet"]), default="auto",
              show_default=True,
              help="Images: .npz (MedMNIST keys) or a folder of PNGs with labels.csv; auto follows OUTPUT's suffix."
                   " Related tables written to a folder: csv (default) or parquet, one file per table.")
@click.option("--balance", default=None, metavar="COLS",
              help="Rebalanced release: equal counts per cell of these categorical columns, e.g. --balance race,gender.")
@click.option("--balance-file", type=click.Path(dir_okay=False), default=None,
              help="Rebalanced release: target shares per cell from a YAML file (cells: [{race: 0, gender: 1, share: 0.3}, ...]).")
@click.option("--engine", type=click.Choice(["auto", "numpy", "duckdb", "spark"]), default="auto", show_default=True,
              help="One-shot form: where aim/mst/independent count marginals (see `dpsynth train --help`).")
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
    image = api.is_image_source(data, schema_path) if data is not None else None
    if fmt == "png" and Path(output).suffix:
        raise DpsynthError(f"{output}: --format png writes a folder; give a path without a suffix")
    if fmt == "npz" and Path(output).suffix.lower() != ".npz":
        raise DpsynthError(f"{output}: --format npz needs an output ending in .npz")
    if image is False and Path(output).suffix.lower() not in api.OUTPUT_SUFFIXES:
        raise DpsynthError(f"{output}: output must end in .csv or .parquet")
    png_folder = fmt == "png" or (image is not False and not Path(output).suffix)
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
    elif trained is not None and not no_evaluate and not image and trained.schema.target is not None:
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
@click.option("--internal-out", "--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Internal evaluation folder for report.json/.md/.html (real-data statistics; default with --run: "
                   "internal_eval/RUN_NAME beside the run; never inside a run or release).")
@click.option("--include-real-images", is_flag=True,
              help="Images: also show real test images in the internal report (off by default).")
@click.option("--seed", type=click.IntRange(min=0), default=0)
@click.option("--json", "as_json", is_flag=True, help="Print every number as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --report folder.")
@_friendly
def evaluate(run_dir, real, train_path, holdout_path, test_path, synthetic, schema_path, target, split_seed, quick,
             shadow_models, config_path, report_dir, include_real_images, seed, as_json, overwrite):
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
                                  include_real_images=include_real_images)
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


# ---- release ------------------------------------------------------------------------------
@main.command()
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


# ---- federated ----------------------------------------------------------------------------
@main.command()
@click.option("--sites", multiple=True, type=click.Path(dir_okay=False),
              help="Each site's training file (CSV/Parquet, or .npz images); site name = file stem. "
                   "Repeat the option or list files after it: --sites a.csv b.csv.")
@click.option("--schema", "schema_path", type=click.Path(dir_okay=False), default=None,
              help="The public schema every site shares (YAML).")
@click.option("--generator", "-g", type=click.Choice(["dp-gan", "dp-diffusion", "dp-diffusion-image"]), default=None,
              help="Generator trained at every site (default dp-gan).")
@click.option("--epsilon", type=float, default=None, callback=_positive_epsilon,
              help="Target epsilon of EVERY site (sample-level); the released epsilon is the maximum over sites.")
@click.option("--delta", type=float, default=None, help="Target delta (default per site: min(1e-5, 1/(10 n))).")
@click.option("--accountant", type=click.Choice(["rdp", "prv"]), default=None)
@click.option("--rounds", type=int, default=None, help="Federated rounds (default 3).")
@click.option("--site-level-epsilon", type=float, default=None, callback=_positive_epsilon,
              help="Also give a site-level guarantee: Flower client-side fixed clipping + server noise.")
@click.option("--site-clip-norm", type=float, default=None, help="Site-level DP: L2 clip of each site's update (default 1).")
@click.option("--no-secagg", is_flag=True, default=False, help="Site-level DP without SecAgg+ secure aggregation.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="Federated run YAML.")
@click.option("--seed", type=int, default=None)
@click.option("--threads", type=int, default=None, help="Torch threads per site (default 1).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option("--verbose", is_flag=True, help="Show Flower's per-round log.")
@click.argument("more_sites", nargs=-1, type=click.Path(dir_okay=False))
@_friendly
def federated(sites, schema_path, generator, epsilon, delta, accountant, rounds, site_level_epsilon, site_clip_norm,
              no_secagg, config_path, seed, threads, out, overwrite, verbose, more_sites):
    """Train one DP generator across sites that keep their rows (Flower FedAvg; each site runs
    dpsynth's DP-SGD on its own rows and keeps its own ledger over all rounds).

    \b
    Example:
      dpsynth federated --sites cleveland.csv hungary.csv va.csv --schema heart.yaml \\
          --generator dp-gan --epsilon 3 --rounds 5 --out runs/heart_fed
    Needs: pip install -e '.[federated]'
    """
    from dataclasses import replace

    from dpsynth.federated.config import FederatedConfig, SiteLevelDP, load_federated_config

    base = load_federated_config(config_path) if config_path else FederatedConfig()
    site_files = tuple(sites) + tuple(more_sites)
    config = base.with_overrides(sites=site_files, schema=schema_path, generator=generator, epsilon=epsilon,
                                 delta=delta, accountant=accountant, rounds=rounds, seed=seed, threads=threads)
    if site_level_epsilon is not None or site_clip_norm is not None or no_secagg:
        current = config.site_level_dp
        if current is None and site_level_epsilon is None:
            raise DpsynthError("--site-clip-norm / --no-secagg need --site-level-epsilon (or site_level_dp in --config)")
        current = current or SiteLevelDP(epsilon=site_level_epsilon)
        config = replace(config, site_level_dp=replace(
            current, **{k: v for k, v in {"epsilon": site_level_epsilon, "clip_norm": site_clip_norm,
                                          "secure_aggregation": False if no_secagg else None}.items() if v is not None}))
    progress = _Progress()
    try:
        result = api.federated(config=config, out=out, overwrite=overwrite, progress=progress, verbose=verbose)
    finally:
        progress.close()
    click.echo(f"trained {config.generator} over {len(config.sites)} sites x {config.rounds} rounds in "
               f"{result.fit_seconds:.1f}s -> {out}")
    click.echo(f"released epsilon (max over sites, sample-level) = {result.epsilon:.4f}")
    for name, ledger in result.site_ledgers.items():
        click.echo(f"  site {name}: epsilon={ledger.epsilon():.4f} delta={ledger.delta:.3g}")
    if result.site_level is not None:
        s = result.site_level
        click.echo(f"site-level guarantee (separate): epsilon={s['epsilon']:.4f} delta={s['delta']:.3g} "
                   f"(noise multiplier {s['noise_multiplier']:.4g}, clip {s['clip_norm']}, "
                   f"secure aggregation {s['secure_aggregation']})")


if __name__ == "__main__":  # pragma: no cover
    main()
