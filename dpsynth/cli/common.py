"""What every command shares: the lazy ``dpsynth.api``, the one-line error wrapper, the one-line
usage errors, the shared training options and the progress bar."""

from __future__ import annotations

import functools
import math
import os
import sys

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


def _training_options(fn):
    options = [
        click.option("--data", required=True, help="Embedded dataset name (see `dpsynth datasets`), a .csv/.parquet "
                     "table, or images: a MedMNIST-style .npz (pneumoniamnist/breastmnist/retinamnist.npz need no "
                     "schema), a folder of PNG/JPEG + labels.csv, or a DICOM folder + labels.csv (folders: --schema)."),
        click.option("--schema", "--public-schema", "schema_path", type=click.Path(dir_okay=False), default=None,
                     help="Public schema YAML/JSON (kinds, bounds, categories). Required for files unless --infer-schema."),
        click.option("--infer-schema", is_flag=True, default=False,
                     help="Estimate bounds and categories of a file with DP mechanisms, charged to the budget."),
        click.option("--generator", "-g", default=None, help="Generator name (see `dpsynth generators`); default auto for tables (picked from public "
                          "facts), dp-diffusion-image for images."),
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


#: DP outputs shown without --verbose-losses: AIM/MST selections, noise scale, and dp-merf-image's distance to
#: its released (DP) target, which is post-processing
_PUBLIC_PROGRESS = ("selected", "sigma", "cells", "mmd2")

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
            self.bar = None
