"""Related tables (a relational schema: one model per table, one patient-level ledger) as seen
from the workflows; the work itself is in :mod:`dpsynth.relational.workflow`."""

from __future__ import annotations

from pathlib import Path

from dpsynth.artifacts import LoadedRun


def is_relational_schema(schema_path: str | Path | None) -> bool:
    """Whether ``schema_path`` is a relational schema (a YAML file with ``tables:``)."""
    from dpsynth.data.relational import is_relational_schema_file

    return is_relational_schema_file(schema_path)


def is_relational_run(model) -> bool:
    """Whether ``model`` is a run directory of related tables (it holds relational.yaml)."""
    from dpsynth.relational.workflow import is_relational_run as _is

    return not isinstance(model, LoadedRun) and _is(model)


def generate_relational(*, model: str | Path, out: str | Path, n: int | None = None, seed: int = 0,
                        fmt: str = "auto"):
    """Sample n patients with all their related rows; one file per table or one DuckDB/SQLite file."""
    from dpsynth.relational.workflow import generate_relational as _generate

    return _generate(model=model, out=out, n=n, seed=seed, fmt=fmt)


def evaluate_relational(*, run: str | Path, synthetic: str | Path | None = None, seed: int = 0,
                        report_dir: str | Path | None = None):
    """Integrity, children per parent, sequences and code-chapter marginals (INTERNAL report)."""
    from dpsynth.relational.workflow import evaluate_relational as _evaluate

    return _evaluate(run=run, synthetic=synthetic, seed=seed, report_dir=report_dir)
