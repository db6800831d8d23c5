"""A table source as the workflows see it: loaded, validated against its public schema, clipped
where the schema says so, split (all of a patient's rows in one split), contributions bounded to
k rows per patient, and code columns DP-recoded (charged to the run's ledger)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.data.embedded import get_embedded
from dpsynth.data.loaders import is_embedded, load_source
from dpsynth.data.schema import Schema
from dpsynth.data.splits import SplitSpec, Splits, split_table
from dpsynth.data.table import TableData
from dpsynth.errors import DataError, SchemaError
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger


def resolve_table(data: str, *, schema_path: str | Path | None = None,
                  clip_all: bool = False) -> tuple[pd.DataFrame, Schema]:
    """Load an embedded dataset or a CSV/Parquet file and validate it against its public schema
    (columns marked ``clip: true``, or all with ``clip_all``, are clipped first)."""
    frame, schema, _, _ = _resolve_table_full(data, schema_path=schema_path, clip_all=clip_all)
    return frame, schema


def resolve_table_clipped(data: str, *, schema_path: str | Path | None = None, clip_all: bool = False,
                          inferred: bool = False) -> tuple[pd.DataFrame, Schema, dict[str, int]]:
    """``resolve_table`` plus the number of clipped values per column: a real-data statistic
    for the internal evaluation only, never written into a run or a release. ``inferred``: the
    schema was estimated with DP, so cells are coerced as the inference did (text in a numeric
    column -> missing, integers rounded)."""
    frame, schema, counts, _ = _resolve_table_full(data, schema_path=schema_path, clip_all=clip_all,
                                                   inferred=inferred)
    return frame, schema, counts


def resolve_table_units(data: str, *, schema_path: str | Path | None = None, clip_all: bool = False
                        ) -> tuple[pd.DataFrame, Schema, np.ndarray | None]:
    """:func:`resolve_table` plus each row's privacy-unit code (None when the unit is a row).

    A row-level schema whose patient-id column repeats is refused (one line, naming the column)."""
    frame, schema, _, units = _resolve_table_full(data, schema_path=schema_path, clip_all=clip_all)
    return frame, schema, units


def _resolve_table_full(data: str, *, schema_path: str | Path | None = None, clip_all: bool = False,
                        inferred: bool = False) -> tuple[pd.DataFrame, Schema, dict[str, int], np.ndarray | None]:
    """The prepared table, its schema, the clip counts (internal only) and the privacy-unit codes."""
    from dpsynth.data.clip import prepare_clipped
    from dpsynth.privacy.contribution import check_row_level, unit_index

    raw = load_source(data, as_text=inferred)
    if schema_path is not None:
        schema = Schema.load(schema_path)
    elif is_embedded(data):
        schema = get_embedded(data).schema()
    else:
        raise DataError(
            f"{data}: no schema given. Declare the public domain with --schema schema.yaml "
            f"(write a draft with `dpsynth schema draft {data} -o schema.yaml`), or pass --infer-schema to estimate "
            "it with DP (charged to the budget)"
        )
    if inferred:
        from dpsynth.privacy.infer_schema import coerce_cells

        raw = coerce_cells(raw, schema)
    check_row_level(raw, schema, source=str(data))
    unit = schema.unit_column
    if unit is not None and unit not in raw.columns:
        raise DataError(f"{data}: privacy-unit column '{unit}' named by schema '{schema.name}' is missing")
    units = unit_index(raw[unit]) if unit is not None else None
    frame, counts = prepare_clipped(raw, schema, all_columns=clip_all, source=str(data))
    if units is not None and len(units) != len(frame):
        raise DataError(f"{data}: rows were dropped while preparing a table with privacy-unit column '{unit}'")
    return frame, schema, counts, units


def resolve_splits(data: str, *, schema_path=None, split: SplitSpec, clip_all: bool = False) -> tuple[Splits, Schema]:
    """Splits of the prepared table; with a privacy-unit column all of a patient's rows fall in one split."""
    splits, schema, _ = resolve_splits_clipped(data, schema_path=schema_path, split=split, clip_all=clip_all)
    return splits, schema


def resolve_splits_clipped(data: str, *, schema_path=None, split: SplitSpec, clip_all: bool = False,
                           inferred: bool = False) -> tuple[Splits, Schema, dict[str, int]]:
    """``resolve_splits`` plus the clip counts (internal evaluation only)."""
    frame, schema, counts, units = _resolve_table_full(data, schema_path=schema_path, clip_all=clip_all,
                                                       inferred=inferred)
    try:
        return split_table(frame, split, units=units), schema, counts
    except DataError as exc:  # e.g. too few rows: name the file
        raise DataError(f"{data}: {exc}") from None


def require_reviewed(schema: Schema, source) -> None:
    """Training refuses a schema draft that nobody has reviewed (``reviewed: false``)."""
    if not schema.reviewed:
        raise SchemaError(
            f"{source}: this schema is an unreviewed draft (reviewed: false); check every kind, bound, category, "
            "the target and the sensitive flags against the data dictionary, then set reviewed: true"
        )


def training_data(splits: Splits, schema: Schema, *, seed: int, max_rows_per_unit: int | None = None) -> TableData:
    """The train split as the generator sees it: with a privacy-unit column, contributions are
    bounded to k rows per patient (k: ``max_rows_per_unit``, else the schema's, else
    ``contribution.DEFAULT_MAX_ROWS``), rows beyond k dropped by a rule seeded from ``seed``.
    The number of dropped rows is not returned or recorded."""
    from dpsynth.privacy.contribution import DEFAULT_MAX_ROWS, bound_contributions, check_max_rows, unit_index

    if splits.train_units is None:
        if max_rows_per_unit is not None and max_rows_per_unit != 1:
            raise DataError(f"--max-rows-per-patient needs a privacy-unit column: schema '{schema.name}' has"
                            f" privacy_unit '{schema.privacy_unit}' (one row per person)")
        return TableData(splits.train, schema)
    k = check_max_rows(max_rows_per_unit if max_rows_per_unit is not None
                       else schema.max_rows_per_unit if schema.max_rows_per_unit is not None else DEFAULT_MAX_ROWS)
    unit_key = "__privacy_unit__"
    train = splits.train.assign(**{unit_key: splits.train_units})
    bounded = bound_contributions(train, unit_column=unit_key, max_rows=k, rng=np.random.default_rng([seed, 13]))
    return TableData(bounded.drop(columns=unit_key).reset_index(drop=True), schema,
                     units=unit_index(bounded[unit_key].to_numpy()), max_rows_per_unit=k)


def select_code_domains(data: TableData, *, budget: Budget, ledger: Ledger | None, rng: np.random.Generator
                        ) -> tuple[TableData, Schema, Ledger | None]:
    """For code columns with ``top_codes``: DP-select the kept fine categories (charged to the
    run's ledger, made here when none is given) and fold the rest into their chapters."""
    from dpsynth.privacy.code_selection import recode, select_codes, selection_columns
    from dpsynth.privacy.mechanisms import preprocessing_noise_multiplier

    if not selection_columns(data.schema):
        return data, data.schema, ledger
    if ledger is None:
        ledger = Ledger(delta=budget.resolve_delta(len(data.frame)), accountant=budget.accountant,
                        target_epsilon=None if budget.non_private else budget.epsilon)
    sigma = None if budget.non_private else preprocessing_noise_multiplier(budget, delta=ledger.delta)
    schema = select_codes(data.frame, data.schema, ledger=ledger, noise_multiplier=sigma or 0.0, rng=rng,
                          contribution=data.max_rows_per_unit, secure=budget.secure_mode, exact=budget.non_private)
    return (TableData(recode(data.frame, schema), schema, units=data.units, max_rows_per_unit=data.max_rows_per_unit),
            schema, ledger)
