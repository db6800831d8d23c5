"""Train, generate and evaluate related tables (called by :mod:`dpsynth.api` and the CLI).

A relational run directory holds::

    relational.yaml        the public relational schema
    config.yaml            the run config (generator, params, privacy, split, seed)
    ledger.json            the ONE patient-level ledger of every table
    privacy_card.json/.md  the privacy card, with the per-table budget split
    run.json               data source, patient split sizes, the budget plan per table
    tables/<name>/         weights.safetensors, generator.json, schema.yaml of each table's model
"""

from __future__ import annotations

import json
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import yaml

from dpsynth.data.relational import RelationalSchema
from dpsynth.relational.load import RelationalSplits, load_relational, split_relational
from dpsynth.errors import DataError, PrivacyError
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger
from dpsynth.safe_io import atomic_dir, check_output_dir
from dpsynth.relational.accounting import TablePlan
from dpsynth.relational.model import RelationalModel, fit_relational
from dpsynth.relational.output import read_tables, write_tables
from dpsynth.reports.privacy_card import privacy_card, privacy_card_markdown

SCHEMA_FILE = "relational.yaml"
RELATIONAL_MARKERS = (SCHEMA_FILE, "ledger.json")  # a relational run dpsynth wrote (--overwrite may replace it)


@contextmanager
def _quiet_accountant() -> Iterator[None]:
    """Tiny row-level budgets (a table charged with sensitivity m has rho / m^2) put opacus'
    best RDP order at its largest one; the bound stays valid, the warning is noise here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        yield


@dataclass
class RelationalTrainResult:
    run_dir: Path
    model: RelationalModel
    ledger: Ledger
    schema: RelationalSchema
    splits: RelationalSplits
    fit_seconds: float

    @property
    def generator(self) -> RelationalModel:
        return self.model


def is_relational_run(path) -> bool:
    return path is not None and (Path(path) / SCHEMA_FILE).is_file()


def train_relational(*, data: str | Path, schema_path: str | Path, out: str | Path, config, overwrite: bool = False,
                     progress: Callable[[dict], None] | None = None) -> RelationalTrainResult:
    """Fit every table of a relational schema under one patient-level budget and save the run."""
    out = Path(out)
    check_output_dir(out, overwrite=overwrite, markers=RELATIONAL_MARKERS)
    schema = RelationalSchema.load(schema_path)
    budget: Budget = config.privacy.budget()
    rng = np.random.default_rng(config.seed)
    frames = load_relational(data, schema, rng=rng)
    splits = split_relational(frames, config.split)
    start = time.perf_counter()
    with _quiet_accountant():
        model = fit_relational(splits.train, generator=config.generator, params=dict(config.params), budget=budget,
                               rng=rng, progress=progress)
        spent = model.ledger.epsilon()
    fit_seconds = time.perf_counter() - start
    if spent > budget.epsilon * (1 + 1e-9):
        raise PrivacyError(f"internal error: spent epsilon {spent:.4f} exceeds target {budget.epsilon}")
    run = {
        "kind": "relational",
        "data": str(Path(data).resolve()),
        "split": splits.to_dict(),
        "n_train": splits.train.n_units,
        "fit_seconds": round(fit_seconds, 3),
        "tables": [t.name for t in schema.tables],
        "budget_plan": [p.to_dict() for p in model.plans],
    }
    _save(out, model=model, schema=schema, config=config.to_dict(), run=run, secure_mode=budget.secure_mode, overwrite=overwrite)
    return RelationalTrainResult(run_dir=out, model=model, ledger=model.ledger, schema=schema, splits=splits,
                                 fit_seconds=fit_seconds)


def relational_card(ledger: Ledger, *, generator: str, schema: RelationalSchema, plans: list[TablePlan],
                    n_train: int, secure_mode: bool) -> dict:
    """The privacy card of a relational run: the usual card plus the per-table budget split."""
    card = privacy_card(ledger, generator=generator, n_train=n_train,
                        privacy_unit=f"patient ({schema.root.name}.{schema.privacy_unit}); all of a patient's rows"
                                     " in every table", secure_mode=secure_mode)
    with _quiet_accountant():
        card["tables"] = [
            {**p.to_dict(),
             "epsilon_alone": round(_table_epsilon(ledger, p.table), 6),
             "max_per_parent": schema[p.table].max_per_parent}
            for p in plans
        ]
    card["accounting"] = ("one patient-level zCDP budget R split across tables by budget_share; in a table where one"
                          " patient has at most m rows (m = product of the public bounds k on rows per parent from"
                          " the root) the marginal generator scales its Gaussian noise and its selection"
                          " sensitivity by m (max_rows_per_unit), so every ledger entry is a patient-level expense;"
                          " while a table is fitted the ledger's target is the epsilon of the cumulative shares")
    card["public_inputs"] = ("relational schema (keys, column kinds, bounds, categories, bounds k on rows per parent,"
                             " budget shares) and the number of training patients")
    return card


def relational_card_markdown(card: dict) -> str:
    text = privacy_card_markdown(card)
    lines = ["", "## Budget split across tables (one patient-level ledger)", "",
             "| table | budget share | max rows per parent (k) | rows per patient (m) | patient-level rho |"
             " epsilon of the table alone |",
             "|---|---|---|---|---|---|"]
    for t in card["tables"]:
        lines.append(f"| {t['table']} | {t['budget_share']:.3g} | {t['max_per_parent'] or '-'} | {t['rows_per_patient']}"
                     f" | {t['patient_rho']:.4g} | {t['epsilon_alone']:.4g} |")
    lines += ["", f"Accounting: {card['accounting']}.", ""]
    return text + "\n".join(lines)


def _table_epsilon(ledger: Ledger, table: str) -> float:
    part = Ledger(delta=ledger.delta, accountant=ledger.accountant)
    part.entries = [e for e in ledger.entries if e.params.get("table") == table]
    return part.epsilon()


def _save(out: Path, *, model: RelationalModel, schema: RelationalSchema, config: dict, run: dict,
          secure_mode: bool, overwrite: bool) -> None:
    with atomic_dir(out, overwrite=overwrite, markers=RELATIONAL_MARKERS) as tmp:
        schema.save(tmp / SCHEMA_FILE)
        model.ledger.save(tmp / "ledger.json")
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp / "run.json").write_text(json.dumps(run, indent=2))
        card = relational_card(model.ledger, generator=config["generator"], schema=schema, plans=model.plans,
                               n_train=run["n_train"], secure_mode=secure_mode)
        (tmp / "privacy_card.json").write_text(json.dumps(card, indent=2))
        (tmp / "privacy_card.md").write_text(relational_card_markdown(card))
        model.save_tables(tmp / "tables")


@dataclass
class LoadedRelationalRun:
    model: RelationalModel
    schema: RelationalSchema
    ledger: Ledger
    config: dict
    run: dict
    path: Path


def load_relational_run(path: str | Path) -> LoadedRelationalRun:
    path = Path(path)
    needed = [SCHEMA_FILE, "ledger.json", "run.json", "tables"]
    missing = [f for f in needed if not (path / f).exists()]
    if missing:
        raise DataError(f"{path} is not a dpsynth relational run (missing {', '.join(missing)})")
    schema = RelationalSchema.load(path / SCHEMA_FILE)
    try:
        ledger = Ledger.load(path / "ledger.json")
        run = json.loads((path / "run.json").read_text())
        config = yaml.safe_load((path / "config.yaml").read_text()) if (path / "config.yaml").is_file() else {}
        plans = [TablePlan(**p) for p in run["budget_plan"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: corrupt run files ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") \
            from None
    model = RelationalModel.load_tables(path / "tables", schema, ledger, plans)
    return LoadedRelationalRun(model=model, schema=schema, ledger=ledger, config=config, run=run, path=path)


@dataclass
class RelationalGenerateResult:
    out: Path
    rows: dict
    seconds: float
    ledger: Ledger


def generate_relational(*, model: str | Path, out: str | Path, n: int | None = None, seed: int = 0,
                        fmt: str = "auto") -> RelationalGenerateResult:
    """Sample n patients (default: as many as the run trained on) with all their related rows,
    and write one file per table (folder of CSV / Parquet) or one .duckdb / .sqlite database."""
    loaded = load_relational_run(model)
    n = int(loaded.run["n_train"]) if n is None else n
    start = time.perf_counter()
    sampled = loaded.model.sample(n, rng=np.random.default_rng(seed))
    tables = loaded.model.output_tables(sampled)
    path = write_tables(tables, out, schema=loaded.schema, fmt=fmt)
    return RelationalGenerateResult(out=path, rows={k: len(v) for k, v in tables.items()},
                                    seconds=time.perf_counter() - start, ledger=loaded.ledger)


@dataclass
class RelationalEvaluation:
    results: dict
    report_files: dict
    seconds: float


def evaluate_relational(*, run: str | Path, synthetic: str | Path | None = None, seed: int = 0,
                        report_dir: str | Path | None = None) -> RelationalEvaluation:
    """Integrity, children per parent, sequences and code-chapter marginals of synthetic tables
    against the run's real training patients. INTERNAL: it reads real rows; its report says so."""
    from dpsynth.metrics.relational import evaluate_relational_tables, relational_report_markdown

    loaded = load_relational_run(run)
    schema = loaded.schema
    split = loaded.run["split"]
    from dpsynth.data.splits import SplitSpec

    spec = SplitSpec(seed=split["seed"], holdout=split["holdout"], test=split["test"])
    rng_load = np.random.default_rng(int(loaded.config.get("seed", 0)))
    splits = split_relational(load_relational(loaded.run["data"], schema, rng=rng_load), spec)
    start = time.perf_counter()
    if synthetic is not None:
        syn = read_tables(synthetic, schema)
        model_view = None
    else:
        model_view = loaded.model.sample(int(loaded.run["n_train"]), rng=np.random.default_rng(seed))
        syn = loaded.model.output_tables(model_view)
    results = evaluate_relational_tables(real=splits.train.tables, synthetic=syn, schema=schema)
    results["ledger"] = {"epsilon": loaded.ledger.epsilon(), "delta": loaded.ledger.delta,
                         "tables": loaded.run.get("budget_plan")}
    results["meta"] = {"run": str(run), "real": "training patients of the run", "n_real_patients": splits.train.n_units,
                       "synthetic": str(synthetic) if synthetic is not None else f"sampled with seed {seed}"}
    seconds = time.perf_counter() - start
    from dpsynth.reports.internal import check_outside_runs, default_internal_dir

    # real-data statistics: an internal evaluation, never inside the run (or a release made from it)
    report_dir = check_outside_runs(default_internal_dir(loaded.path) if report_dir is None else report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": report_dir / "relational_report.json", "md": report_dir / "relational_report.md"}
    files["json"].write_text(json.dumps(results, indent=2, default=str))
    files["md"].write_text(relational_report_markdown(results, title=f"{loaded.config.get('generator')} on"
                                                                       f" {schema.name}"))
    return RelationalEvaluation(results=results, report_files=files, seconds=seconds)
