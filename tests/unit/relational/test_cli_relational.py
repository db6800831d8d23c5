"""`dpsynth train / generate / evaluate` on related tables, end to end; and the MIMIC-III demo."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dpsynth.cli import main

REPO = Path(__file__).resolve().parents[3]


def _run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def test_train_generate_evaluate_related_tables(tiny, tmp_path):
    folder, schema = tiny
    run = tmp_path / "run"
    res = _run("train", "--data", folder, "--schema", schema, "--generator", "independent", "--epsilon", 1.5,
               "--out", run)
    assert res.exit_code == 0, res.output
    assert "budget split (patient level): patients 33%" in res.output
    ledger = json.loads((run / "ledger.json").read_text())
    assert 0.99 * 1.5 < ledger["epsilon"] <= 1.5 and ledger["target_epsilon"] == 1.5
    assert {e["params"]["table"] for e in ledger["entries"]} == {"patients", "visits", "codes"}
    card = (run / "privacy_card.md").read_text()
    assert "| visits | 0.333 | 3 | 3 |" in card and "| codes | 0.333 | 4 | 12 |" in card
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["n_train"] == 24 and "dropped" not in json.dumps(run_json)
    # nothing in the run holds a real id
    real_ids = set(pd.read_csv(folder / "visits.csv")["vid"].astype(str)) | set(pd.read_csv(folder / "patients.csv")["pid"].astype(str))
    saved = "".join(p.read_text() for p in run.rglob("*") if p.is_file() and p.suffix in (".json", ".yaml", ".md"))
    assert not any(f'"{i}"' in saved or f"'{i}'" in saved for i in real_ids)

    res = _run("generate", "--model", run, "-o", tmp_path / "synth", "--seed", 1)
    assert res.exit_code == 0, res.output
    assert "wrote patients 24," in res.output
    assert sorted(p.name for p in (tmp_path / "synth").iterdir()) == ["codes.csv", "patients.csv", "visits.csv"]
    res = _run("generate", "--model", run, "-o", tmp_path / "synth.sqlite", "-n", 50)
    assert res.exit_code == 0, res.output
    con = sqlite3.connect(tmp_path / "synth.sqlite")
    orphans = con.execute("SELECT COUNT(*) FROM visits v LEFT JOIN patients p ON v.pid = p.pid WHERE p.pid IS NULL")
    assert orphans.fetchone()[0] == 0 and con.execute("SELECT COUNT(*) FROM patients").fetchone()[0] == 50
    con.close()

    report = tmp_path / "report"
    res = _run("evaluate", "--run", run, "--synthetic", tmp_path / "synth", "--report", report)
    assert res.exit_code == 0, res.output
    assert "referential integrity 1.000; synthetic keys equal to a real key: 0" in res.output
    assert "sequence visits: length TVD" in res.output and "transitions of vtype" in res.output
    assert "codes.chapter" in res.output
    assert (report / "relational_report.md").read_text().startswith("INTERNAL EVALUATION")


def test_bad_related_tables_are_one_line_errors_and_leave_nothing(tiny, tmp_path):
    folder, schema = tiny
    visits = pd.read_csv(folder / "visits.csv")
    visits.loc[3, "pid"] = 4242
    visits.to_csv(folder / "visits.csv", index=False)
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--data", str(folder), "--schema", str(schema), "--generator",
                                    "independent", "--out", str(run)])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "table 'visits'" in lines[0] and "referential integrity" in lines[0]
    assert "Traceback" not in res.output and not run.exists()
    res = CliRunner().invoke(main, ["train", "--data", str(folder), "--schema", str(schema), "--generator", "dp-gan",
                                    "--out", str(run)])
    assert res.exit_code == 2 and not run.exists()


def test_generate_refuses_a_file_suffix_for_related_tables(tiny, tmp_path):
    folder, schema = tiny
    run = tmp_path / "run"
    assert _run("train", "--data", folder, "--schema", schema, "-g", "independent", "--out", run).exit_code == 0
    res = CliRunner().invoke(main, ["generate", "--model", str(run), "-o", str(tmp_path / "s.csv")])
    assert res.exit_code == 2 and "a folder (no suffix), a .duckdb or a .sqlite file" in res.output
    assert not (tmp_path / "s.csv").exists()


def test_relational_overwrite_replaces_a_run_but_never_a_foreign_folder(tiny, tmp_path):
    folder, schema = tiny
    run = tmp_path / "run"
    args = ("train", "--data", folder, "--schema", schema, "-g", "independent", "--out", run)
    assert _run(*args).exit_code == 0
    assert _run(*args).exit_code == 2  # exists: needs --overwrite
    assert _run(*args, "--overwrite").exit_code == 0  # a relational run dpsynth wrote: replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    res = _run("train", "--data", folder, "--schema", schema, "-g", "independent", "--out", mine, "--overwrite")
    assert res.exit_code == 2 and "not a dpsynth run directory" in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    synth = tmp_path / "synth"
    assert _run("generate", "--model", run, "-o", synth).exit_code == 0
    assert _run("generate", "--model", run, "-o", synth, "--overwrite").exit_code == 0  # its own tables: replaced
    res = _run("generate", "--model", run, "-o", mine, "--overwrite")
    assert res.exit_code == 2 and "not a folder of these synthetic tables" in res.output, res.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _mimic() -> Path:
    env = os.environ.get("DPSYNTH_SHARED_DATA")
    path = (Path(env) if env else REPO.parent / "shared" / "data") / "ehr" / "mimic3_demo"
    if not path.is_dir():
        pytest.skip(f"real data {path} is not available (../shared/data absent; or set DPSYNTH_SHARED_DATA)")
    return path


def test_mimic3_demo_relational_schema_end_to_end(tmp_path):
    """The shipped MIMIC-III demo schema: every table within one budget, integrity 100%."""
    from dpsynth.data.relational import RelationalSchema
    from dpsynth.data.splits import SplitSpec
    from dpsynth.metrics.relational import evaluate_relational_tables
    from dpsynth.privacy.budget import Budget
    from dpsynth.relational.load import load_relational, split_relational
    from dpsynth.relational.model import fit_relational

    folder = _mimic()
    schema = RelationalSchema.load(REPO / "configs" / "relational_mimic3_demo.yaml")
    frames = load_relational(folder, schema, rng=np.random.default_rng(0))
    assert frames.n_units == 100 and frames.tables["admissions"].groupby("subject_id").size().max() == 3
    splits = split_relational(frames, SplitSpec(seed=0))
    model = fit_relational(splits.train, generator="independent", params={}, budget=Budget(epsilon=1.0),
                           rng=np.random.default_rng(0))
    assert 0.99 < model.ledger.epsilon() <= 1.0
    assert {e.params["table"] for e in model.ledger.entries} == set(schema.names)
    out = model.output_tables(model.sample(60, rng=np.random.default_rng(1)))
    res = evaluate_relational_tables(real=splits.train.tables, synthetic=out, schema=schema)
    assert res["referential_integrity"]["value"] == 1.0 and res["key_overlap_with_real"] == 0
    assert set(res["code_chapters"]["columns"]) == {"diagnoses_icd.chapter", "procedures_icd.chapter"}
    assert res["children_per_parent"]["tables"]["diagnoses_icd"]["k"] == 12
