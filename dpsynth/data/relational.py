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

from dpsynth.data.icd9 import chapter_buckets
from dpsynth.data.icd9_procedures import PROCEDURE_LABELS
from dpsynth.data.schema import Column, Schema
from dpsynth.errors import SchemaError

START = "START"
DERIVE_OPS = {
    "days_since_anchor": ("column",),
    "years_before_anchor": ("column",),
    "days_between": ("start", "end"),
    "days_since_previous": ("column",),
    "icd9_chapter": ("column", "kind"),
    "prefix_map": ("column", "map"),
    "number": ("column",),
}
_DERIVE_OPTIONAL = {"prefix_map": ("default",)}
_TABLE_KEYS = {
    "name", "file", "primary_key", "parent", "foreign_key", "max_per_parent", "max_per_patient", "order_by", "position",
    "condition_on",
    "sequence", "budget_share", "derive", "columns", "description",
}
_TOP_KEYS = {"name", "description", "anchor", "tables"}
_SEQUENCE_KEYS = {"gap", "offset", "previous"}


@dataclass(frozen=True)
class Derivation:
    """One derived column: ``name`` computed by ``op`` from the raw columns in ``args``."""

    name: str
    op: str
    args: dict

    @property
    def sources(self) -> list[str]:
        return [self.args[k] for k in ("column", "start", "end") if k in self.args]


@dataclass(frozen=True)
class Sequence:
    """A child table read as each parent's encounters in order (first-order Markov)."""

    gap: str | None = None  # modelled column: days since the previous encounter
    offset: str | None = None  # output column: days since the parent's first encounter (cumulative gap)
    previous: tuple[str, ...] = ()  # columns whose previous value each encounter is conditioned on


@dataclass(frozen=True)
class TableSpec:
    name: str
    file: str
    columns: tuple[Column, ...]
    primary_key: str | None = None
    parent: str | None = None
    foreign_key: str | None = None
    max_per_parent: int | None = None
    max_per_patient: int | None = None  # public cap on one patient's rows in this table (over all parents)
    order_by: str | None = None
    position: str | None = None
    condition_on: tuple[str, ...] = ()
    sequence: Sequence | None = None
    budget_share: float | None = None
    derive: tuple[Derivation, ...] = ()
    description: str = ""

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def declared(self) -> list[str]:
        return [c.name for c in self.columns]

    def prev_name(self, column: str) -> str:
        return f"prev_{column}"


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


def _column(table: TableSpec, name: str) -> Column:
    for col in table.columns:
        if col.name == name:
            return col
    raise SchemaError(f"table '{table.name}': '{name}' is not one of its declared columns {table.declared}")


def _table_from_dict(raw, i: int, source: str, earlier: dict[str, TableSpec]) -> TableSpec:
    if not isinstance(raw, dict) or "name" not in raw:
        raise SchemaError(f"{source}: table #{i} must be a mapping with a 'name'")
    name = str(raw["name"])
    where = f"{source}: table '{name}'"
    unknown = set(raw) - _TABLE_KEYS
    if unknown:
        raise SchemaError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TABLE_KEYS)}")
    if name in earlier:
        raise SchemaError(f"{where}: declared twice")
    if "file" not in raw:
        raise SchemaError(f"{where}: needs a 'file' (CSV or Parquet, relative to the data folder)")
    # columns: the single-table schema parser checks kinds, bounds and categories
    columns = Schema.from_dict({"name": name, "columns": raw.get("columns")}, source=where).columns
    derive = tuple(_derivation(d, where) for d in raw.get("derive") or [])
    declared = {c.name for c in columns}
    for d in derive:
        if d.name not in declared:
            raise SchemaError(f"{where}: derived column '{d.name}' is not declared under 'columns'")
    parent = raw.get("parent")
    pk = raw.get("primary_key")
    if pk is not None and pk in declared:
        raise SchemaError(f"{where}: primary key '{pk}' must not be a modelled column (keys are never modelled)")
    spec = dict(name=name, file=str(raw["file"]), columns=columns, primary_key=pk, derive=derive,
                description=str(raw.get("description", "")), order_by=raw.get("order_by"),
                position=raw.get("position"), budget_share=raw.get("budget_share"))
    if parent is None:
        if earlier:
            raise SchemaError(f"{where}: only the first table (the root, one row per patient) has no parent")
        if pk is None:
            raise SchemaError(f"{where}: the root table needs a 'primary_key' (the patient id, the privacy unit)")
        for key in ("foreign_key", "max_per_parent", "max_per_patient", "condition_on", "sequence"):
            if raw.get(key) is not None:
                raise SchemaError(f"{where}: '{key}' applies to child tables only")
        return TableSpec(**spec)
    if parent not in earlier:
        raise SchemaError(f"{where}: parent '{parent}' is not a table declared before it")
    if earlier[parent].primary_key is None:
        raise SchemaError(f"{where}: parent '{parent}' has no primary_key to refer to")
    fk = raw.get("foreign_key")
    if not fk:
        raise SchemaError(f"{where}: a child table needs 'foreign_key' (its column holding the parent's key)")
    if fk in declared:
        raise SchemaError(f"{where}: foreign key '{fk}' must not be a modelled column (keys are never modelled)")
    k = raw.get("max_per_parent")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise SchemaError(f"{where}: 'max_per_parent' must be a public integer >= 1 (the bound k), got {k!r}")
    cap = raw.get("max_per_patient")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise SchemaError(f"{where}: 'max_per_patient' must be a public integer >= 1, got {cap!r}")
    condition_on = raw.get("condition_on") or []
    if not isinstance(condition_on, list):
        raise SchemaError(f"{where}: 'condition_on' must be a list of the parent's columns")
    for col in condition_on:
        _column(earlier[parent], col)
        if col in declared:
            raise SchemaError(f"{where}: conditioning column '{col}' clashes with a declared column of the same name")
    sequence = None
    if raw.get("sequence") is not None:
        sequence = _sequence(raw["sequence"], where, declared, columns, spec["order_by"])
    return TableSpec(**spec, parent=str(parent), foreign_key=str(fk), max_per_parent=k, max_per_patient=cap,
                     condition_on=tuple(condition_on), sequence=sequence)


def _sequence(raw, where: str, declared: set, columns, order_by) -> Sequence:
    if not isinstance(raw, dict):
        raise SchemaError(f"{where}: 'sequence' must be a mapping with gap / offset / previous")
    unknown = set(raw) - _SEQUENCE_KEYS
    if unknown:
        raise SchemaError(f"{where}: sequence: unknown key(s) {sorted(unknown)}; allowed: {sorted(_SEQUENCE_KEYS)}")
    if order_by is None:
        raise SchemaError(f"{where}: a sequence needs 'order_by' (the column that orders a parent's rows)")
    gap, offset = raw.get("gap"), raw.get("offset")
    kinds = {c.name: c for c in columns}
    if gap is not None and (gap not in declared or not kinds[gap].is_numeric):
        raise SchemaError(f"{where}: sequence gap '{gap}' must be a declared numeric column")
    if offset is not None and (gap is None or offset in declared):
        raise SchemaError(f"{where}: sequence offset '{offset}' needs a gap column and must not be a declared column")
    previous = tuple(raw.get("previous") or ())
    for col in previous:
        if col not in declared or kinds[col].is_numeric or kinds[col].nullable:
            raise SchemaError(f"{where}: sequence previous '{col}' must be a declared categorical or binary column"
                              " that is not nullable")
    return Sequence(gap=gap, offset=offset, previous=previous)


def _derivation(raw, where: str) -> Derivation:
    if not isinstance(raw, dict) or "name" not in raw or "op" not in raw:
        raise SchemaError(f"{where}: each 'derive' entry needs 'name' and 'op'")
    op = raw["op"]
    if op not in DERIVE_OPS:
        raise SchemaError(f"{where}: derived column '{raw['name']}': op '{op}' is not one of {sorted(DERIVE_OPS)}")
    args = {k: v for k, v in raw.items() if k not in ("name", "op")}
    needed, optional = set(DERIVE_OPS[op]), set(_DERIVE_OPTIONAL.get(op, ()))
    if needed - set(args) or set(args) - needed - optional:
        raise SchemaError(f"{where}: derived column '{raw['name']}': op '{op}' takes {sorted(needed | optional)},"
                          f" got {sorted(args)}")
    if op == "icd9_chapter" and args["kind"] not in ("diagnosis", "procedure"):
        raise SchemaError(f"{where}: derived column '{raw['name']}': kind must be 'diagnosis' or 'procedure'")
    if op == "prefix_map" and not isinstance(args["map"], dict):
        raise SchemaError(f"{where}: derived column '{raw['name']}': 'map' must be a mapping prefix -> label")
    return Derivation(name=str(raw["name"]), op=op, args=args)


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


def _table_to_dict(t: TableSpec) -> dict:
    out: dict = {"name": t.name, "file": t.file}
    for key in ("primary_key", "parent", "foreign_key", "max_per_parent", "max_per_patient", "order_by", "position",
                "budget_share"):
        if getattr(t, key) is not None:
            out[key] = getattr(t, key)
    if t.condition_on:
        out["condition_on"] = list(t.condition_on)
    if t.sequence is not None:
        seq = {k: getattr(t.sequence, k) for k in ("gap", "offset") if getattr(t.sequence, k) is not None}
        if t.sequence.previous:
            seq["previous"] = list(t.sequence.previous)
        out["sequence"] = seq
    if t.derive:
        out["derive"] = [{"name": d.name, "op": d.op, **d.args} for d in t.derive]
    if t.description:
        out["description"] = t.description
    out["columns"] = [c.to_dict() for c in t.columns]
    return out


def chapter_labels(kind: str) -> tuple[str, ...]:
    """The public category list of an ``icd9_chapter`` derivation (to write in the schema)."""
    return {"diagnosis": chapter_buckets(), "procedure": PROCEDURE_LABELS}[kind]
