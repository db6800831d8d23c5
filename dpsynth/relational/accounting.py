"""Patient-level privacy accounting for related tables: ONE budget, ONE ledger, split explicitly.

The privacy unit is the patient, the root table's row. Neighbouring datasets differ by one
patient and *all* of that patient's rows in every table. After bounding (at most
``max_per_parent`` = k children per parent row, public), one patient has at most

    m(table) = product of k along the path from the root to ``table``

rows in a table (MIMIC demo schema: 1 patient row, 3 admissions, 3 x 2 = 6 ICU stays,
3 x 12 = 36 diagnoses, 3 x 6 = 18 procedures). Count columns (children per parent) live on
the parent's rows and the conditioning columns copied from a parent live on the child's rows,
so they add no rows.

How each table is charged, with the patient-level sensitivity scaling of the marginal
generators (:mod:`dpsynth.privacy.contribution`, ``TableData.max_rows_per_unit``: a Gaussian
measurement's L2 sensitivity and an exponential-mechanism score's sensitivity are multiplied
by the bound, so every ledger entry is already a patient-level expense):

1. the total patient-level zCDP rho R is the largest whose composition stays within the
   target (epsilon, delta) under the ledger's RDP accountant (all entries here are Gaussian
   releases with sample rate 1 or zCDP bounds, so rho adds up);
2. table t gets the share ``s_t R`` (``budget_share`` in the relational schema, equal shares
   when none is given; the shares sum to 1);
3. its generator (aim, mst or independent, unchanged) is fitted on the ONE ledger with
   ``max_rows_per_unit = m_t`` while the ledger's target is the epsilon of the cumulative rho
   s_1 R + ... + s_t R: its noise std and selection sensitivity scale by m_t (for a histogram,
   a patient's m_t rows move it by at most m_t in L2), and it plans its spending so the
   ledger stops at that stage's target (a table that spends less leaves the rest to the next);
4. each entry the table adds is labelled with ``[table]`` in its purpose and ``table``,
   ``rows_per_patient`` (= m_t) and ``budget_share`` in its params, so the split is recorded
   in the ledger itself; the ledger's target is then the run's target again.

The ledger's epsilon is the RDP composition of all those patient-level entries, at most the
target since the stages add up to R. With k = 1 everywhere (one row per patient in every
table) nothing is scaled. Only marginal generators can be planned this way; DP-SGD
generators are refused.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from dpsynth.data.relational import RelationalSchema
from dpsynth.errors import PrivacyError
from dpsynth.generators.tabular.marginal.measure import available_rho
from dpsynth.privacy.accountants import compose
from dpsynth.privacy.ledger import Ledger


@dataclass(frozen=True)
class TablePlan:
    """One table's part of the patient-level budget."""

    table: str
    budget_share: float
    rows_per_patient: int  # m_t: the most rows one patient can have in the table
    patient_rho: float  # s_t R: the table's planned zCDP rho, at patient level
    cumulative_rho: float  # s_1 R + ... + s_t R
    stage_epsilon: float  # the epsilon of cumulative_rho: the ledger's target while the table is fitted

    def to_dict(self) -> dict:
        return dict(vars(self))


def plan_tables(schema: RelationalSchema, *, ledger: Ledger) -> list[TablePlan]:
    """Split the ledger's target into patient-level shares, one per table (see module doc)."""
    if ledger.target_epsilon is None:
        raise PrivacyError("related tables need a finite target epsilon (no non-private relational run)")
    total = available_rho(ledger, ledger.target_epsilon)
    shares = schema.budget_shares()
    plans, cumulative = [], ledger.rho()
    for i, table in enumerate(schema.tables):
        patient_rho = shares[table.name] * total
        cumulative += patient_rho
        last = i == len(schema.tables) - 1
        stage = ledger.target_epsilon if last else compose(
            ledger.gaussian_history(), zcdp_rho=cumulative, delta=ledger.accountant_delta(), accountant=ledger.accountant)
        plans.append(TablePlan(table=table.name, budget_share=shares[table.name],
                               rows_per_patient=schema.rows_per_unit(table.name), patient_rho=patient_rho,
                               cumulative_rho=cumulative, stage_epsilon=min(stage, ledger.target_epsilon)))
    return plans


@contextmanager
def table_stage(ledger: Ledger, plan: TablePlan) -> Iterator[None]:
    """Fit one table inside this block: the ledger's target is the stage's, and every entry
    added is labelled with the table, its rows per patient and its budget share."""
    target, first = ledger.target_epsilon, len(ledger.entries)
    ledger.target_epsilon = plan.stage_epsilon
    try:
        yield
    finally:
        ledger.target_epsilon = target
        for entry in ledger.entries[first:]:
            entry.purpose = f"[{plan.table}] {entry.purpose}"
            entry.params = {**entry.params, "table": plan.table, "rows_per_patient": plan.rows_per_patient,
                            "budget_share": plan.budget_share}
