"""Rebalanced release: synthetic rows with chosen counts per subgroup cell.

``--balance race,gender`` asks for equal counts in every cell of the cross product of the
columns' public categories; ``--balance-file target.yaml`` gives a target distribution::

    cells:
      - {race: 0, gender: 0, share: 0.4}
      - {race: 0, gender: 1, share: 0.2}
      - {race: 1, gender: 0, share: 0.2}
      - {race: 1, gender: 1, share: 0.2}

Each cell is sampled with ``generator.sample(count, conditions=cell)`` (works for every
generator that supports conditions), then all rows are concatenated and shuffled. Sampling
from a trained model is post-processing: it costs no privacy. A cell the model cannot reach
raises a one-line error naming it.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from dpsynth.data.schema import Schema, _key
from dpsynth.errors import ConfigError, DpsynthError


def parse_balance_columns(text: str | Sequence[str] | None) -> tuple[str, ...]:
    if text is None:
        return ()
    names = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(n.strip() for n in names if n and n.strip())
    if len(set(names)) != len(names):
        raise DpsynthError(f"--balance lists a column twice: {','.join(names)}")
    return names


def equal_cells(schema: Schema, columns: Sequence[str]) -> list[tuple[dict, float]]:
    """Every cell of the columns' public categories, each with the same share."""
    if not columns:
        raise DpsynthError("--balance needs at least one column")
    cats = []
    for name in columns:
        if name not in schema:
            raise DpsynthError(f"--balance: '{name}' is not a column of schema '{schema.name}'")
        col = schema[name]
        if col.is_numeric:
            raise DpsynthError(f"--balance: column '{name}' is numeric; balance on categorical or binary columns")
        cats.append(list(col.categories))
    combos = list(product(*cats))
    return [(dict(zip(columns, combo)), 1.0 / len(combos)) for combo in combos]


def load_target(path: str | Path, schema: Schema) -> list[tuple[dict, float]]:
    """Cells and shares from a target YAML (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"balance target file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict) or set(raw) != {"cells"} or not isinstance(raw["cells"], list) or not raw["cells"]:
        raise ConfigError(f"{path}: expected a mapping with one key 'cells': a non-empty list of cells")
    cells, columns = [], None
    for i, cell in enumerate(raw["cells"]):
        if not isinstance(cell, dict) or "share" not in cell:
            raise ConfigError(f"{path}: cell #{i} must be a mapping of column values plus 'share'")
        values = {k: v for k, v in cell.items() if k != "share"}
        if columns is None:
            columns = sorted(values)
        if sorted(values) != columns:
            raise ConfigError(f"{path}: cell #{i} names columns {sorted(values)}, the first cell names {columns}")
        share = cell["share"]
        if not isinstance(share, (int, float)) or share < 0:
            raise ConfigError(f"{path}: cell #{i}: share must be a number >= 0, got {share!r}")
        for name, value in values.items():
            if name not in schema:
                raise ConfigError(f"{path}: '{name}' is not a column of schema '{schema.name}'")
            col = schema[name]
            if col.is_numeric or _key(value) not in {_key(c) for c in col.categories}:
                raise ConfigError(f"{path}: {name}={value!r} is not a declared category of '{name}'")
        cells.append((values, float(share)))
    keys = [tuple(_key(c[0][k]) for k in columns) for c in cells]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{path}: a cell is listed twice")
    total = sum(s for _, s in cells)
    if total <= 0:
        raise ConfigError(f"{path}: the shares sum to 0")
    return [(values, share / total) for values, share in cells]


def cell_counts(n: int, shares: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of n * shares (equal shares give counts differing by <= 1)."""
    raw = np.asarray(shares, dtype=float) * n
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts.tolist()


def _label(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def balanced_frame(generator, n: int, cells: list[tuple[dict, float]], *, rng: np.random.Generator) -> pd.DataFrame:
    """Sample each cell with ``conditions=cell``, concatenate, shuffle."""
    if n <= 0:
        raise DpsynthError(f"number of rows must be > 0, got {n}")
    parts = []
    for (values, _), count in zip(cells, cell_counts(n, [s for _, s in cells])):
        if count == 0:
            continue
        try:
            frame = generator.sample(count, conditions=values, rng=rng).frame
        except DpsynthError as exc:
            raise DpsynthError(f"balanced release: cell {_label(values)} cannot be generated "
                               f"({str(exc).splitlines()[0]})") from None
        mask = np.ones(len(frame), dtype=bool)
        for name, value in values.items():
            mask &= frame[name].map(_key).to_numpy() == _key(value)
        if len(frame) != count or not mask.all():
            raise DpsynthError(f"balanced release: generator '{generator.name}' returned rows outside cell "
                               f"{_label(values)}; it does not honour conditions")
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True)
    return out.iloc[rng.permutation(len(out))].reset_index(drop=True)
