"""``federated``: DP training across sites that keep their rows, on Flower; see :mod:`dpsynth.federated`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def federated(*, config, out: str | Path, overwrite: bool = False, progress: Callable[[dict], None] | None = None,
              verbose: bool = False):
    """Federated DP training across sites on Flower (``pip install -e '.[federated]'``); ``config`` is a
    :class:`dpsynth.federated.config.FederatedConfig` or a YAML path. See :mod:`dpsynth.federated`."""
    from dpsynth.federated.config import load_federated_config
    from dpsynth.federated.workflow import run_federated

    if not hasattr(config, "sites"):
        config = load_federated_config(config)
    return run_federated(config=config, out=out, overwrite=overwrite, progress=progress, verbose=verbose)
