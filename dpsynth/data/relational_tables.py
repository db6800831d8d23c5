"""The tables of a relational schema: one TableSpec per table (its columns, key, parent, bound k
on rows per parent, sequence, derived columns), parsed from and written back to plain dicts.
The schema that ties them together is :class:`dpsynth.data.relational.RelationalSchema`."""

from __future__ import annotations

from dataclasses import dataclass

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
