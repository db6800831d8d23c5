"""Write a commented schema draft from a table's header and column storage types only.

``dpsynth schema draft data.csv -o schema.yaml`` is the first step with a new table. The draft
holds no statistic of the values: no minimum, maximum, category list or missing-value count.
Every bound and category list is a ``TODO`` for the user to fill from the data dictionary or
the documentation (public knowledge); the kind of each column is a guess from its storage type
for the user to review; the file says ``reviewed: false`` and training refuses it until the
user sets ``reviewed: true``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from dpsynth.errors import DataError

TODO = "TODO"


def _guess_kind(dtype) -> tuple[str, str]:
    """(kind, why) from the storage type alone."""
    if pd.api.types.is_bool_dtype(dtype):
        return "binary", "stored as true/false"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer", "stored as whole numbers: use binary for 0/1 flags, categorical for codes"
    if pd.api.types.is_float_dtype(dtype):
        return "continuous", "stored as decimals (or whole numbers with blanks): integer if counts, binary if 0/1"
    return "categorical", "stored as text"


def _q(text: str) -> str:
    """A double-quoted YAML scalar (commas, colons and brackets stay text)."""
    return json.dumps(str(text))


def draft_schema_text(header: Sequence[str], dtypes: Sequence, *, name: str, source: str,
                      target: str | None = None, sensitive: Sequence[str] = ()) -> str:
    """The commented YAML draft."""
    unknown = [c for c in ([target] if target else []) + list(sensitive) if c not in header]
    if unknown:
        raise DataError(f"{source}: column(s) {unknown} named by --target/--sensitive are not in its header")
    lines = [
        f"# dpsynth schema DRAFT for {source}",
        "# Written from the header and the column storage types only: nothing here was computed from the values.",
        "# A schema is public knowledge. Fill every TODO from the data dictionary or the documentation (never",
        "# from the data), review every guessed kind, then set `reviewed: true`; training refuses a draft.",
        "# Keys per column: kind (continuous | integer | categorical | binary), low/high (numeric), categories",
        "#   (categorical), nullable (missing values are data), sensitive (subgroup and fairness analysis by this",
        "#   column), clip (clip values outside low/high, map unlisted categories to `other`), other (the",
        "#   category that unlisted values map to when clip is true), atoms (public values that hold a point",
        "#   mass, e.g. 0 for 'none' or a score's maximum; kept exact), description (quoted text).",
        f"name: {_q(name)}",
        f"description: {_q('TODO: one line about the table')}",
        "reviewed: false   # set to true once every TODO is filled and every guess checked",
        (f"target: {_q(target)}" if target else "target: null      # TODO: the outcome column for TSTR/TRTR (binary), "
                                                    "e.g. target: \"readmitted\""),
        "privacy_unit: row  # or the patient-id column when one patient has several rows",
        "drop: []           # identifier columns to remove before anything else, e.g. [\"patient_id\"]",
        "columns:",
    ]
    for col, dtype in zip(header, dtypes):
        kind, why = _guess_kind(dtype)
        is_target = col == target
        if is_target and kind != "categorical":
            kind, why = "binary", "the target: a 0/1 outcome (TSTR/TRTR need two categories)"
        lines.append(f"  - name: {_q(col)}")
        lines.append(f"    kind: {kind}   # guess: {why}")
        if kind in ("integer", "continuous"):
            lines.append(f"    low: {TODO}     # public lower bound from the documentation")
            lines.append(f"    high: {TODO}    # public upper bound from the documentation")
            lines.append("    # atoms: [0]  # uncomment for a point mass at a public value")
        elif kind == "binary":
            lines.append("    categories: [0, 1]")
        else:
            lines.append(f"    categories: {TODO}   # the documented codes, e.g. [\"A\", \"B\", \"other\"]")
            lines.append("    # other: \"other\"   # with clip: true, unlisted values map to this listed category")
        lines.append(f"    nullable: {'false' if is_target else 'true'}   # review: may this column be missing?")
        lines.append(f"    sensitive: {'true' if col in set(sensitive) else 'false'}   "
                     "# review: true for subgroup columns (age, sex, race, ...)")
        lines.append("    clip: false   # true: clip values outside the bounds instead of refusing the file")
        lines.append(f"    description: {_q('')}")
    return "\n".join(lines) + "\n"


def draft_schema(data: str | Path, out: str | Path, *, target: str | None = None, sensitive: Sequence[str] = (),
                 overwrite: bool = False) -> Path:
    """Write the draft for a CSV/Parquet file to ``out`` (refuses to overwrite unless asked)."""
    from dpsynth.data.loaders import read_table

    data, out = Path(data), Path(out)
    if not data.is_file():
        raise DataError(f"data file not found: {data}")
    if out.exists() and not overwrite:
        raise DataError(f"{out} exists (use --overwrite to replace it)")
    frame = read_table(data)
    text = draft_schema_text([str(c) for c in frame.columns], list(frame.dtypes), name=data.stem, source=data.name,
                             target=target, sensitive=sensitive)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return out
