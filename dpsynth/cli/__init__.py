"""The ``dpsynth`` command line. Each command calls :mod:`dpsynth.api` and nothing deeper.

Errors a user can cause (missing file, bad schema, impossible budget, ...) are printed as one
line on stderr with exit code 2, never as a traceback. One module per command group; they import
nothing heavy at module level, so ``dpsynth --help`` stays fast.
"""

from __future__ import annotations

import click

from dpsynth.cli.audit import audit, release
from dpsynth.cli.common import LOSS_WARNING, _friendly, _Group, api
from dpsynth.cli.evaluate import evaluate
from dpsynth.cli.generate import generate
from dpsynth.cli.info import datasets, generators, schema
from dpsynth.cli.pretrain import pretrain
from dpsynth.cli.sweep import federated, sweep
from dpsynth.cli.train import train


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dpsynth")
def main() -> None:
    """dpsynth: differentially private synthetic medical data.

    Train a DP generator on a real table, sample synthetic rows that may leave the building,
    and measure how useful, faithful and private they are. Every access to the real data is
    charged to one privacy ledger; the epsilon printed is the composed total.
    """


__all__ = ["main", "LOSS_WARNING", "api", "_friendly"]  # stable names (tests, console script)

for _command in (datasets, generators, train, pretrain, schema, generate, evaluate, audit, release, sweep, federated):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
