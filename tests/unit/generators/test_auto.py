"""``--generator auto``: the choice is a deterministic function of public facts, reads no row,
is recorded in the ledger at no privacy cost and printed by the CLI, reloads from a saved run,
and beats the independent baseline on a small real suite table at epsilon 1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dpsynth.cli import main
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.data.table import TableData
from dpsynth.generators import REGISTRY
from dpsynth.generators.auto import Auto, decide, public_facts
from dpsynth.privacy.budget import Budget

REPO = Path(__file__).resolve().parents[3]


def _suite_table(name: str):
    pytest.importorskip("mbi")
    import sys

    sys.path.insert(0, str(REPO))
    from evaluation.suite_tables import load_table

    frame, schema = load_table(name)
    return split_table(frame, SplitSpec(seed=0)), schema


@pytest.fixture(scope="module")
def wdbc():
    """WDBC (scikit-learn's bundled copy, offline; 31 columns) with its public suite schema."""
    return _suite_table("wdbc")


@pytest.fixture(scope="module")
def gbsg2():
    """GBSG2 (lifelines' bundled copy, offline; 9 columns) with its public suite schema."""
    return _suite_table("gbsg2")


def test_rule_is_a_function_of_public_facts(actg):
    schema = actg[0]
    facts = public_facts(schema, n=1283, epsilon=1.0, delta=1e-5)
    assert set(facts) == {"rows", "columns", "numeric_columns", "domain_sum", "log10_domain", "epsilon", "delta",
                          "target"}
    assert decide(facts) == decide(dict(facts))
    assert {decide({**facts, "epsilon": e})[0] for e in (0.1, 0.5, 1.0, 4.0, 16.0)} == {"aim"}  # 26 columns: wide
    name, params, reason = decide(facts)
    assert name == "aim" and "26 columns" in reason and "eps 1" in reason
    narrow = decide({**facts, "columns": 5})
    assert narrow[0] == "mst" and narrow[1] == {"target_weight": 4.0}
    assert decide({**facts, "columns": 5, "target": None})[0] == "aim"


def test_choice_reads_no_row_and_is_charged_nothing(gbsg2):
    splits, schema = gbsg2
    real = splits.train
    rng = np.random.default_rng(5)  # same public facts, unrelated rows: every column shuffled on its own
    shuffled = pd.DataFrame({c: real[c].to_numpy()[rng.permutation(len(real))] for c in real.columns})
    runs = []
    for frame in (real, shuffled):
        gen = Auto().fit(TableData(frame, schema), budget=Budget(epsilon=1.0), rng=np.random.default_rng(0))
        runs.append(gen)
    assert runs[0].choice_ == runs[1].choice_ and runs[0].choice_params_ == runs[1].choice_params_
    assert runs[0].reason_ == runs[1].reason_ and runs[0].reason_.startswith(f"auto -> {runs[0].choice_}:")
    entry = next(e for e in runs[0].ledger_.entries if e.purpose.startswith("auto -> "))
    assert entry.rho == 0.0 and entry.params["auto_choice"] == runs[0].choice_
    assert runs[0].ledger_.epsilon() <= 1.0 + 1e-9
    # a saved run reloads the same generator from get_params() and the tensors
    again = Auto(**runs[0].get_params()).load_state_dict(runs[0].state_dict(), schema=schema)
    assert again.choice_ == runs[0].choice_
    assert len(again.sample(50, rng=np.random.default_rng(1)).frame) == 50


def _auroc(train: pd.DataFrame, test: pd.DataFrame, schema) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from dpsynth.metrics.encoding import FeatureEncoder

    features = tuple(n for n in schema.names if n != schema.target)
    enc = FeatureEncoder(schema, columns=features).fit(train)
    y = train[schema.target].astype(int).to_numpy()
    model = LogisticRegression(max_iter=2000).fit(enc.transform(train), y)
    return float(roc_auc_score(test[schema.target].astype(int), model.predict_proba(enc.transform(test))[:, 1]))


def test_auto_beats_independent_on_wdbc_at_epsilon_1(wdbc):
    splits, schema = wdbc
    data = TableData(splits.train, schema)
    scores = {}
    for name in ("auto", "independent"):
        gen = REGISTRY[name]().fit(data, budget=Budget(epsilon=1.0), rng=np.random.default_rng(0))
        syn = gen.sample(len(splits.train), rng=np.random.default_rng(1)).frame
        scores[name] = _auroc(syn, splits.holdout, schema)  # the validation split
    assert scores["auto"] > scores["independent"] + 0.1, scores


def test_cli_train_defaults_to_auto_and_prints_the_choice(tmp_path):
    pytest.importorskip("mbi")
    from lifelines.datasets import load_gbsg2

    load_gbsg2().to_csv(tmp_path / "gbsg2.csv", index=False)  # a public table and its public schema
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "gbsg2.csv"), "--schema",
                                       str(REPO / "evaluation" / "schemas" / "suite_gbsg2.yaml"), "--epsilon", "1",
                                       "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "auto -> mst: 9 columns" in result.output  # 9 columns with a target: the narrow branch
    generator = json.loads((out / "generator.json").read_text())
    assert generator["name"] == "auto" and generator["params"] == {"choice": "mst",
                                                                   "choice_params": {"target_weight": 4.0}}
    assert "auto -> mst" in (out / "privacy_card.md").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["dp_plan"]["auto"]["choice"] == "mst"
    sampled = CliRunner().invoke(main, ["generate", "--model", str(out), "-n", "20", "-o", str(tmp_path / "s.csv")],
                                 catch_exceptions=False)
    assert sampled.exit_code == 0, sampled.output
    assert len(pd.read_csv(tmp_path / "s.csv")) == 20
