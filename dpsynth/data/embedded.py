"""Embedded datasets: real tables shipped inside installed packages, with a public schema.

No network is used: ACTG 175 is read from the CSV file that ``lifelines`` installs.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import pandas as pd

from dpsynth.data.schema import Schema
from dpsynth.errors import DataError


@dataclass(frozen=True)
class EmbeddedDataset:
    name: str
    description: str
    rows: int
    package: str
    loader: Callable[[], pd.DataFrame]

    def schema(self) -> Schema:
        with resources.files("dpsynth.data").joinpath(f"schemas/{self.name}.yaml").open() as fh:
            import yaml

            return Schema.from_dict(yaml.safe_load(fh), source=f"embedded schema {self.name}")

    def load(self) -> pd.DataFrame:
        return self.loader()


def _load_actg175() -> pd.DataFrame:
    import importlib.util

    # locate the installed package without importing it (importing lifelines costs seconds)
    spec = importlib.util.find_spec("lifelines")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - lifelines is a core dependency
        raise DataError("embedded dataset 'actg175' needs the 'lifelines' package (pip install lifelines)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "ACTG175.csv"
    if not path.is_file():
        raise DataError(f"embedded dataset 'actg175': {path} not found in the installed lifelines")
    return pd.read_csv(path)


EMBEDDED: dict[str, EmbeddedDataset] = {
    "actg175": EmbeddedDataset(
        name="actg175",
        description="ACTG 175 HIV trial (Hammer et al. 1996): 2139 patients, race/gender/age, outcome cens",
        rows=2139,
        package="lifelines",
        loader=_load_actg175,
    ),
}


def get_embedded(name: str) -> EmbeddedDataset:
    try:
        return EMBEDDED[name]
    except KeyError:
        raise DataError(f"unknown embedded dataset '{name}' (available: {', '.join(EMBEDDED)})") from None
