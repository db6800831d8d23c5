"""Patient-level privacy accounting for related tables: ONE budget, ONE ledger, split explicitly.

The privacy unit is the patient, the root table's row. Neighbouring datasets differ by one
patient and *all* of that patient's rows in every table. After bounding (at most
``max_per_parent`` = k children per parent row, public), one patient has at most

    m(table) = product of k along the path from the root to ``table``

rows in a table (MIMIC demo schema: 1 patient row, 3 admissions, 3 x 2 = 6 ICU stays,
3 x 12 = 36 diagnoses, 3 x 6 = 18 procedures). Count columns (children per parent) live on
the parent's rows and the conditioning columns copied from a parent live on the child's rows,
so they add no rows.

How each table is charged (group privacy of zCDP, Bun & Steinke 2016, Prop. 1.9: a mechanism
that is rho-zCDP for one row is m^2 rho-zCDP for a group of m rows):

1. the total patient-level zCDP rho R is the largest whose composition stays within the
   target (epsilon, delta) under the ledger's RDP accountant;
2. table t gets the patient-level share ``s_t R`` (``budget_share`` in the relational schema,
   equal shares when none is given; the shares sum to 1);
3. its generator (aim, mst or independent, unchanged) is fitted with the row-level budget
   ``s_t R / m_t^2`` on a private sub-ledger: its Gaussian measurements have row-level L2
   sensitivity sqrt(#marginals) and its exponential-mechanism selections row-level score
   sensitivity, exactly as for a one-row-per-patient table;
4. every sub-ledger entry is then charged to the run's ONE ledger at patient level: a Gaussian
   release with noise multiplier z (noise std / row-level sensitivity) becomes z / m_t (the
   patient's m_t rows move each released histogram by at most m_t times a row's L2
   sensitivity: the noise is the same, the sensitivity m_t times larger), and a zCDP entry
   rho becomes m_t^2 rho (the exponential mechanism's score moves by at most m_t times its row
   sensitivity). Each entry carries ``table``, ``rows_per_patient`` (= m_t) and
   ``budget_share`` in its params, so the split is recorded in the ledger itself.

The ledger's epsilon is the RDP composition of all those patient-level entries; it is at
most the target because sum_t m_t^2 (s_t R / m_t^2) = R. With k = 1 everywhere (one row per
patient in every table) nothing is scaled. Only marginal generators (Gaussian and zCDP
entries with sample rate 1) can be charged this way; DP-SGD generators are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpsynth.data.relational import RelationalSchema
from dpsynth.errors import PrivacyError
from dpsynth.generators.marginal.measure import available_rho
from dpsynth.privacy.accountants import compose
from dpsynth.privacy.ledger import Ledger


@dataclass(frozen=True)
class TablePlan:
    """One table's part of the patient-level budget."""

    table: str
    budget_share: float
    rows_per_patient: int  # m_t: the most rows one patient can have in the table
    patient_rho: float  # s_t R: zCDP rho charged to the patient-level ledger
    row_rho: float  # s_t R / m_t^2: what the table's generator may spend at row level
    row_epsilon: float  # the (epsilon, delta) of row_rho alone: the generator's target

    def to_dict(self) -> dict:
        return dict(vars(self))


def plan_tables(schema: RelationalSchema, *, ledger: Ledger) -> list[TablePlan]:
    """Split the ledger's target into patient-level shares, one per table (see module doc)."""
    if ledger.target_epsilon is None:
        raise PrivacyError("related tables need a finite target epsilon (no non-private relational run)")
    total = available_rho(ledger, ledger.target_epsilon)
    shares = schema.budget_shares()
    plans = []
    for table in schema.tables:
        m = schema.rows_per_unit(table.name)
        patient_rho = shares[table.name] * total
        row_rho = patient_rho / m**2
        row_eps = compose([], zcdp_rho=row_rho, delta=ledger.accountant_delta(), accountant=ledger.accountant)
        plans.append(TablePlan(table=table.name, budget_share=shares[table.name], rows_per_patient=m,
                               patient_rho=patient_rho, row_rho=row_rho, row_epsilon=row_eps))
    return plans


def table_ledger(ledger: Ledger, plan: TablePlan) -> Ledger:
    """The row-level sub-ledger a table's generator spends on (target: the plan's row epsilon)."""
    return Ledger(delta=ledger.delta, accountant=ledger.accountant, target_epsilon=plan.row_epsilon)


def charge_table(ledger: Ledger, sub: Ledger, plan: TablePlan) -> None:
    """Charge every entry of a table's row-level sub-ledger to the patient-level ledger,
    scaled by the table's rows per patient m (noise multiplier / m, zCDP rho x m^2)."""
    m = plan.rows_per_patient
    for entry in sub.entries:
        params = {**entry.params, "table": plan.table, "rows_per_patient": m, "budget_share": plan.budget_share}
        purpose = f"[{plan.table}] {entry.purpose}"
        if entry.mechanism == "gaussian":
            if entry.sample_rate != 1.0 or entry.steps != 1 or entry.params.get("delta_spent"):
                raise PrivacyError(f"table '{plan.table}': entry '{entry.purpose}' cannot be scaled to patient level")
            params["row_noise_multiplier"] = entry.noise_multiplier
            ledger.record_gaussian(purpose=purpose, noise_multiplier=entry.noise_multiplier / m, params=params)
        elif entry.mechanism == "zcdp":
            params["row_rho"] = entry.rho
            ledger.record_zcdp(purpose=purpose, rho=entry.rho * m * m, params=params)
        else:
            raise PrivacyError(f"table '{plan.table}': a '{entry.mechanism}' expense cannot be charged at patient"
                               " level here; related tables support the marginal generators (aim, mst, independent)")
