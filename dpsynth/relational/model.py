"""A model of related tables: one marginal generator per table, parents before children.

Fitting (see :mod:`dpsynth.relational.accounting` for the privacy accounting): each table's
generator (aim, mst or independent, reused unchanged) is fitted on its model frame, which
holds its declared columns, the number of children per row for each child table, the
previous encounter's values (sequence tables) and the parent's conditioning columns.

Sampling:
1. the root table: n rows from its generator, each with a fresh key ``syn-<i>``;
2. each child table, in schema order: every synthetic parent row asks for as many children as
   its sampled count column says (so the children per parent follow the DP model of the
   counts), drawn from the child's generator conditioned on the parent's conditioning
   columns (exact conditioning in the graphical model). Sequence tables are drawn one
   position at a time, conditioned also on the previous encounter's values (``START`` for
   the first); the gap column of the first encounter is 0 and the offset column is the
   cumulative gap. Every child gets a fresh key and its parent's synthetic key.
Synthetic keys are never real ids (fresh strings) and every foreign key refers to a sampled
parent, so referential integrity is 100% by construction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from safetensors.torch import load_file, save_file

import dpsynth
from dpsynth.config import build_generator
from dpsynth.data.relational import START, RelationalSchema, TableSpec
from dpsynth.relational.load import UNIT, RelationalFrames
from dpsynth.data.schema import Schema
from dpsynth.data.table import TableData
from dpsynth.errors import DataError, DpsynthError
from dpsynth.generators.tabular.marginal.discretize import column_bins
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.contribution import unit_index
from dpsynth.relational.accounting import TablePlan, plan_tables, table_stage

MARGINAL_GENERATORS = ("aim", "mst", "independent")
KEY_PREFIX = "syn-"


class RelationalModel:
    """Fitted generators of every table of a relational schema, and the one patient-level ledger."""

    def __init__(self, schema: RelationalSchema, generators: dict, ledger: Ledger, plans: list[TablePlan]) -> None:
        self.schema = schema
        self.generators = generators
        self.ledger = ledger
        self.plans = plans

    # ---- sampling -----------------------------------------------------------------------
    def sample(self, n: int, *, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
        """n patients and all their related rows, one frame per table (model columns included)."""
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise DpsynthError(f"number of patients must be a positive integer, got {n!r}")
        root = self.schema.root
        frame = self.generators[root.name].sample(int(n), rng=rng).frame.reset_index(drop=True)
        frame.insert(0, root.primary_key, _fresh_keys(len(frame)))
        out = {root.name: frame}
        for table in self.schema.tables[1:]:
            out[table.name] = self._sample_children(table, out[table.parent], rng)
        return out

    def _sample_children(self, table: TableSpec, parents: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        parent = self.schema[table.parent]
        counts = parents[self.schema.count_column(table.name)].astype(int).to_numpy()
        gen, model = self.generators[table.name], self.schema.model_schema(table.name)
        cond = parents[list(table.condition_on)].reset_index(drop=True)
        if table.sequence is None:
            rows = np.repeat(np.arange(len(parents)), counts)
            children = _draw(gen, model, cond.iloc[rows].reset_index(drop=True), rng)
            position = _positions(counts)
        else:
            parts = []
            previous = pd.DataFrame({table.prev_name(c): [START] * len(parents) for c in table.sequence.previous})
            for pos in range(1, int(counts.max(initial=0)) + 1):
                alive = np.flatnonzero(counts >= pos)
                given = pd.concat([cond.iloc[alive].reset_index(drop=True),
                                   previous.iloc[alive].reset_index(drop=True)], axis=1)
                drawn = _draw(gen, model, given, rng)
                if table.sequence.gap is not None and pos == 1:
                    drawn[table.sequence.gap] = 0.0
                for c in table.sequence.previous:
                    previous.loc[alive, table.prev_name(c)] = drawn[c].to_numpy()
                parts.append(drawn.assign(_parent=alive, _pos=pos))
            children = pd.concat(parts, ignore_index=True) if parts else _draw(gen, model, cond.iloc[[]], rng)
            if parts:
                children = children.sort_values(["_parent", "_pos"], kind="stable").reset_index(drop=True)
                rows, position = children.pop("_parent").to_numpy(), children.pop("_pos").to_numpy()
            else:
                rows, position = np.zeros(0, dtype=int), np.zeros(0, dtype=int)
            if table.sequence.offset is not None:
                gaps = children[table.sequence.gap].astype(float)
                children[table.sequence.offset] = gaps.groupby(rows).cumsum().to_numpy() if len(gaps) else gaps
        children = children.reset_index(drop=True)
        keys = {}
        if table.primary_key is not None:
            keys[table.primary_key] = _fresh_keys(len(children))
        keys[table.foreign_key] = parents[parent.primary_key].to_numpy()[rows] if len(rows) else []
        if table.position is not None:
            keys[table.position] = np.asarray(position, dtype=np.int64)
        return pd.concat([pd.DataFrame(keys), children], axis=1)

    def output_tables(self, sampled: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """The release view: keys, position, declared columns and sequence offsets (model-only
        columns such as counts, previous values and copied parent columns removed)."""
        out = {}
        for table in self.schema.tables:
            cols = [c for c in (table.primary_key, table.foreign_key, table.position) if c is not None]
            cols += table.declared
            if table.sequence is not None and table.sequence.offset is not None:
                cols.append(table.sequence.offset)
            out[table.name] = sampled[table.name][cols].reset_index(drop=True)
        return out

    # ---- persistence --------------------------------------------------------------------
    def save_tables(self, folder: Path) -> None:
        """Each table's generator under ``folder/<table>/``: weights (safetensors, tensors only),
        hyper-parameters (JSON) and its model schema (YAML)."""
        for name, gen in self.generators.items():
            d = folder / name
            d.mkdir(parents=True)
            state = {k: v.contiguous() for k, v in gen.state_dict().items()}
            save_file(state, str(d / "weights.safetensors"), metadata={"generator": gen.name,
                                                                        "dpsynth": dpsynth.__version__})
            (d / "generator.json").write_text(json.dumps({"name": gen.name, "params": gen.get_params()}, indent=2))
            self.schema.model_schema(name).save(d / "schema.yaml")

    @classmethod
    def load_tables(cls, folder: Path, schema: RelationalSchema, ledger: Ledger, plans: list[TablePlan]):
        generators = {}
        for table in schema.tables:
            d = folder / table.name
            try:
                meta = json.loads((d / "generator.json").read_text())
                state = load_file(str(d / "weights.safetensors"))
            except (OSError, ValueError, KeyError) as exc:
                raise DataError(f"{d}: missing or corrupt table model ({str(exc).splitlines()[0]})") from None
            model = Schema.load(d / "schema.yaml")
            if model.to_dict() != schema.model_schema(table.name).to_dict():
                raise DataError(f"{d}: its schema.yaml does not match the run's relational schema")
            gen = build_generator(meta["name"], meta["params"])
            gen.load_state_dict(state, schema=model)
            gen.ledger_ = ledger
            generators[table.name] = gen
        return cls(schema, generators, ledger, plans)


def fit_relational(train: RelationalFrames, *, generator: str, params: dict, budget: Budget,
                   rng: np.random.Generator, progress: Callable[[dict], None] | None = None) -> RelationalModel:
    """Fit one ``generator`` per table under ONE patient-level budget (see accounting)."""
    if generator not in MARGINAL_GENERATORS:
        raise DpsynthError(f"related tables use a marginal generator ({', '.join(MARGINAL_GENERATORS)}),"
                           f" not '{generator}'")
    if budget.non_private:
        raise DpsynthError("related tables need a finite epsilon (SDV's HMA is the non-private comparison)")
    if budget.accountant != "rdp":
        raise DpsynthError("related tables are accounted in zCDP: use accountant 'rdp'")
    schema = train.schema
    n_patients = train.n_units
    delta = budget.resolve_delta(n_patients)
    ledger = Ledger(delta=delta, accountant=budget.accountant, target_epsilon=budget.epsilon)
    plans = plan_tables(schema, ledger=ledger)
    generators = {}
    for plan in plans:
        model = schema.model_schema(plan.table)
        frame = train.tables[plan.table][model.names].reset_index(drop=True)
        if len(frame) == 0:
            raise DataError(f"table '{plan.table}' has no rows among the {n_patients} training patients")
        gen = build_generator(generator, params)
        stage_budget = Budget(epsilon=plan.stage_epsilon, delta=delta, accountant=budget.accountant,
                              secure_mode=budget.secure_mode)
        table_progress = None
        if progress is not None:
            table_progress = lambda info, _t=plan.table: progress({**info, "table": _t})  # noqa: E731
        data = TableData(frame, model, units=unit_index(train.tables[plan.table][UNIT]),
                         max_rows_per_unit=plan.rows_per_patient)
        with table_stage(ledger, plan):
            gen.fit(data, budget=stage_budget, rng=rng, ledger=ledger, progress=table_progress)
        generators[plan.table] = gen
    return RelationalModel(schema, generators, ledger, plans)


# ---- helpers ----------------------------------------------------------------------------
def _fresh_keys(n: int) -> np.ndarray:
    return np.array([f"{KEY_PREFIX}{i + 1}" for i in range(n)], dtype=object)


def _positions(counts: np.ndarray) -> np.ndarray:
    """1..c for each parent with c children, concatenated."""
    if counts.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum())) - starts + 1


def _draw(gen, model: Schema, given: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One row per row of ``given``, each drawn from ``gen`` conditioned on its values.

    Rows whose conditions fall in the same model cell (numeric values in the same public bin)
    are drawn in one call; the given values are then written back row by row."""
    names = [c.name for c in model.columns]
    if len(given) == 0:
        return pd.DataFrame({c.name: pd.Series(dtype=float if c.is_numeric else object) for c in model.columns})
    if given.shape[1] == 0:
        return gen.sample(len(given), rng=rng).frame.reset_index(drop=True)
    bins = getattr(gen, "bins", 32)
    codes = np.stack([column_bins(model[c], bins=bins).encode(given[c]) for c in given.columns], axis=1)
    _, group = np.unique(codes, axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    frames, index = [], []
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        first = given.iloc[members[0]]
        conditions = {c: (None if pd.isna(first[c]) else first[c]) for c in given.columns}
        frames.append(gen.sample(len(members), conditions=conditions, rng=rng).frame)
        index.append(members)
    drawn = pd.concat(frames, ignore_index=True)
    order = np.concatenate(index)
    result = drawn.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
    for c in given.columns:
        result[c] = given[c].to_numpy()
    return result[names]
