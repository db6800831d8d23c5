"""The public schema of a set of related tables: keys, public bounds on children per parent,
derived columns (dates as offsets, ICD-9 chapters), sequences, and the budget split.

A relational schema is a YAML file with ``tables:`` (parents listed before their children)::

    name: mimic3_demo
    anchor: {table: admissions, column: admittime}   # a patient's first admission: dates are offsets from it
    tables:
      - name: patients                 # the root: one row per patient, its primary key is the privacy unit
        file: PATIENTS.csv
        primary_key: subject_id
        budget_share: 0.25
        derive: [{name: age, op: years_before_anchor, column: dob}]
        columns: [{name: gender, kind: categorical, categories: [F, M]}, {name: age, kind: integer, low: 0, high: 90}]
      - name: admissions
        file: ADMISSIONS.csv
        primary_key: hadm_id
        parent: patients
        foreign_key: subject_id        # column of this table holding the parent's primary key
        max_per_parent: 3              # public k: children beyond k per parent are dropped (first k in order_by)
        # max_per_patient: 12          # optional public cap on a patient's rows in the table, over all parents
        order_by: admittime
        condition_on: [gender, age]    # parent columns the child model is conditioned on
        sequence: {gap: gap_days, offset: admit_offset_days, previous: [admission_type]}
        columns: [...]                 # the table's modelled columns, in the single-table schema format

Only the declared columns (raw or derived) are read from each file; other raw columns are
ignored. Everything here is public: k, bounds, categories and the budget split are written
from documentation, never read off the data.

Columns dpsynth adds to the model of each table (never to its output):
- ``n_<child>`` on a parent: the number of its children in ``child`` (categorical 0..k),
  so the number of children per parent is a DP-modelled attribute of the parent row;
- ``prev_<col>`` on a sequence table: the previous encounter's value (``START`` for the
  first), so first-order transitions between a parent's encounters are modelled;
- the ``condition_on`` columns copied from the parent row.

Derivations (``derive:``), each a fixed public function of one patient's own rows; numeric
results are clipped to the declared column's public [low, high]:
- ``days_since_anchor`` (column): days from the patient's anchor (first admission) to ``column``;
- ``years_before_anchor`` (column): years from ``column`` (e.g. date of birth) to the anchor;
- ``days_between`` (start, end): days from ``start`` to ``end`` on the same row;
- ``days_since_previous`` (column): days since the previous row of the same parent in
  ``order_by`` order (0 for the first);
- ``icd9_chapter`` (column, kind: diagnosis | procedure): the ICD-9-CM chapter of a code
  (diagnoses: the chapter buckets of :mod:`dpsynth.data.icd9`, e.g. '390-459'; procedures:
  :mod:`dpsynth.data.icd9_procedures`); MIMIC's undotted codes are read as well;
- ``prefix_map`` (column, map: {prefix: label}, default): the label of the first matching prefix;
- ``number`` (column): the column as a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dpsynth.data.relational_tables import (_DERIVE_OPTIONAL, _SEQUENCE_KEYS, _TABLE_KEYS, _TOP_KEYS,  # noqa: F401
                                            DERIVE_OPS, START, Derivation, Sequence, TableSpec, _column,
                                            _derivation, _sequence, _table_from_dict, _table_to_dict,
                                            chapter_labels)
from dpsynth.data.schema import Column, Schema
from dpsynth.errors import SchemaError


@dataclass(frozen=True)
class RelationalSchema:
    name: str
    tables: tuple[TableSpec, ...]
    anchor: tuple[str, str] | None = None  # (table, column)
    description: str = ""
    _index: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({t.name: t for t in self.tables})

    # ---- structure ----------------------------------------------------------------------
    def __getitem__(self, name: str) -> TableSpec:
        try:
            return self._index[name]
        except KeyError:
            raise SchemaError(f"relational schema '{self.name}': unknown table '{name}'") from None

    @property
    def root(self) -> TableSpec:
        return self.tables[0]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tables]

    @property
    def privacy_unit(self) -> str:
        return self.root.primary_key

    def children(self, name: str) -> list[TableSpec]:
        return [t for t in self.tables if t.parent == name]

    def count_column(self, child: str) -> str:
        return f"n_{child}"

    def rows_per_unit(self, name: str) -> int:
        """The most rows one patient (privacy unit) can have in table ``name``: the product of
        the public bounds k along the path from the root, capped at each table's public
        ``max_per_patient`` (a patient keeps at most that many rows of the table)."""
        table = self[name]
        if table.parent is None:
            return 1
        m = self.rows_per_unit(table.parent) * int(table.max_per_parent)
        return m if table.max_per_patient is None else min(m, int(table.max_per_patient))

    def budget_shares(self) -> dict[str, float]:
        """Each table's share of the patient-level budget: as declared, or equal shares."""
        if all(t.budget_share is None for t in self.tables):
            return {t.name: 1.0 / len(self.tables) for t in self.tables}
        return {t.name: float(t.budget_share) for t in self.tables}

    def model_schema(self, name: str) -> Schema:
        """The single-table schema a generator is fitted on: the declared columns, one count
        column per child table, the previous-encounter columns and the parent's conditioning
        columns (all public: categories come from the declared schema and the bounds k)."""
        table = self[name]
        columns = list(table.columns)
        for child in self.children(name):
            k = int(child.max_per_parent)
            columns.append(Column(name=self.count_column(child.name), kind="categorical", categories=tuple(range(k + 1)),
                                  description=f"number of rows in {child.name} per {name} row (public bound {k})"))
        if table.sequence is not None:
            for col in table.sequence.previous:
                source = _column(table, col)
                columns.append(Column(name=table.prev_name(col), kind="categorical",
                                      categories=tuple(source.categories) + (START,),
                                      description=f"{col} of the previous {name} row of the same {table.parent}"))
        if table.parent is not None:
            parent = self[table.parent]
            for col in table.condition_on:
                columns.append(_column(parent, col))
        # the patient id is the privacy unit (never modelled); one patient has at most m rows here
        return Schema(columns=tuple(columns), name=name, privacy_unit=self.privacy_unit, drop=(self.privacy_unit,),
                      max_rows_per_unit=self.rows_per_unit(name), description=table.description)

    # ---- (de)serialisation --------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict, *, source: str = "relational schema") -> "RelationalSchema":
        if not isinstance(raw, dict):
            raise SchemaError(f"{source}: expected a mapping at the top level")
        unknown = set(raw) - _TOP_KEYS
        if unknown:
            raise SchemaError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
        tables_raw = raw.get("tables")
        if not isinstance(tables_raw, list) or not tables_raw:
            raise SchemaError(f"{source}: 'tables' must be a non-empty list")
        tables: list[TableSpec] = []
        for i, t in enumerate(tables_raw):
            tables.append(_table_from_dict(t, i, source, {x.name: x for x in tables}))
        anchor = raw.get("anchor")
        if anchor is not None:
            if not isinstance(anchor, dict) or set(anchor) != {"table", "column"}:
                raise SchemaError(f"{source}: 'anchor' must be a mapping with 'table' and 'column'")
            if anchor["table"] not in {t.name for t in tables}:
                raise SchemaError(f"{source}: anchor table '{anchor['table']}' is not a declared table")
            anchor = (str(anchor["table"]), str(anchor["column"]))
        schema = cls(name=str(raw.get("name", "relational")), tables=tuple(tables), anchor=anchor,
                     description=str(raw.get("description", "")))
        _check_shares(schema, source)
        for t in schema.tables:
            if any(d.op in ("days_since_anchor", "years_before_anchor") for d in t.derive) and anchor is None:
                raise SchemaError(f"{source}: table '{t.name}' derives from the anchor but no 'anchor' is declared")
            schema.model_schema(t.name)  # raises on clashing or unknown columns
        return schema

    @classmethod
    def load(cls, path: str | Path) -> "RelationalSchema":
        path = Path(path)
        if not path.is_file():
            raise SchemaError(f"schema file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise SchemaError(f"schema file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        return cls.from_dict(raw, source=str(path))

    def to_dict(self) -> dict:
        out: dict = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.anchor is not None:
            out["anchor"] = {"table": self.anchor[0], "column": self.anchor[1]}
        out["tables"] = [_table_to_dict(t) for t in self.tables]
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def is_relational_schema_file(path: str | Path | None) -> bool:
    """Whether ``path`` is a YAML file with a top-level ``tables:`` list (cheap check, no validation)."""
    if path is None or not Path(path).is_file() or Path(path).suffix.lower() not in (".yaml", ".yml"):
        return False
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and "tables" in raw


def _check_shares(schema: RelationalSchema, source: str) -> None:
    given = [t.budget_share for t in schema.tables]
    if all(s is None for s in given):
        return
    if any(s is None for s in given):
        raise SchemaError(f"{source}: give 'budget_share' for every table or for none (equal shares)")
    if any(not isinstance(s, (int, float)) or isinstance(s, bool) or not s > 0 for s in given):
        raise SchemaError(f"{source}: every 'budget_share' must be a number > 0")
    if not math.isclose(sum(given), 1.0, abs_tol=1e-9):
        raise SchemaError(f"{source}: the tables' budget_share values sum to {sum(given):g}, not 1")
