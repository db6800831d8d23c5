"""TSTR vs TRTR for multi-class and numeric targets, and their subgroup scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, mean_absolute_error, r2_score, roc_auc_score

from dpsynth.data.schema import Schema
from dpsynth.errors import DataError
from dpsynth.metrics.subgroups import subgroup_report
from dpsynth.metrics.suite import evaluate_table
from dpsynth.metrics.targets import any_utility_table, multiclass_scores, target_kind

# one light setting per family keeps the test fast; the CV family choice still runs
GRIDS = {"grade": {"logistic_regression": {"C": [1.0]}, "gradient_boosting": {"max_iter": [30], "max_leaf_nodes": [7]}},
         "stay": {"ridge": {"alpha": [1.0]}, "gradient_boosting": {"max_iter": [30], "max_leaf_nodes": [7]}}}

SCHEMA = Schema.from_dict({"name": "t", "target": "grade", "columns": [
    {"name": "x", "kind": "continuous", "low": -5, "high": 5},
    {"name": "sex", "kind": "binary", "categories": [0, 1], "sensitive": True},
    {"name": "grade", "kind": "categorical", "categories": ["low", "mid", "high"]},
    {"name": "stay", "kind": "continuous", "low": -20, "high": 20}]})


def _frame(n, seed, *, reverse=False):
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(size=n), -5, 5)
    z = -x if reverse else x  # reverse: a synthetic table whose outcome runs the wrong way
    grade = np.where(z > 0.5, "high", np.where(z > -0.5, "mid", "low"))
    return pd.DataFrame({"x": x, "sex": rng.integers(0, 2, n), "grade": grade,
                         "stay": np.clip(3 * x + rng.normal(size=n), -20, 20)})


def test_kinds():
    assert [target_kind(SCHEMA[c]) for c in ("sex", "grade", "stay")] == ["binary", "multiclass", "numeric"]


def test_multiclass_scores_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    p = rng.dirichlet(np.ones(3), 200)
    s = multiclass_scores(y, p, classes=("a", "b", "c"))
    assert s["macro_auroc"] == pytest.approx(np.mean([roc_auc_score(y == c, p[:, c]) for c in range(3)]))
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))
    assert set(s["recall_per_class"]) == {"a", "b", "c"}


def test_multiclass_tstr_close_to_trtr_on_good_synthetic_and_low_on_a_reversed_one():
    train, test = _frame(600, 0), _frame(400, 1)
    good, _ = any_utility_table(train=train, synthetic=_frame(600, 2), test=test, schema=SCHEMA, target="grade",
                                grids=GRIDS["grade"])
    bad, _ = any_utility_table(train=train, synthetic=_frame(600, 3, reverse=True), test=test, schema=SCHEMA,
                               target="grade", grids={"logistic_regression": {"C": [1.0]}})
    assert good["kind"] == "multiclass" and good["classes"] == ["low", "mid", "high"]
    assert good["trtr"]["selected"]["macro_auroc"] > 0.95
    assert good["macro_auroc_ratio"]["selected"] > 0.97
    assert bad["tstr"]["selected"]["macro_auroc"] < 0.4  # low and high swapped: their AUROCs near 0
    assert bad["tstr"]["selected"]["auroc_per_class"]["high"] < 0.1
    assert set(good["tstr"]["selected"]["recall_per_class"]) == {"low", "mid", "high"}


def test_numeric_target_r2_and_mae_are_sklearns_on_the_test_split():
    train, test = _frame(600, 0), _frame(400, 1)
    res, models = any_utility_table(train=train, synthetic=_frame(600, 2), test=test, schema=SCHEMA, target="stay",
                                    grids=GRIDS["stay"])
    pred = models["tstr"]["selected"].predict(test)
    assert res["tstr"]["selected"]["r2"] == pytest.approx(r2_score(test["stay"], pred))
    assert res["tstr"]["selected"]["mae"] == pytest.approx(mean_absolute_error(test["stay"], pred))
    assert res["trtr"]["selected"]["r2"] > 0.85 and res["r2_ratio"]["selected"] > 0.95
    with pytest.raises(DataError, match="binary"):
        any_utility_table(train=train, synthetic=train, test=test, schema=SCHEMA, target="sex")


@pytest.mark.parametrize("target,key", [("grade", "tstr_macro_auroc"), ("stay", "tstr_r2")])
def test_subgroups_and_suite_report_each_kind(target, key):
    train, holdout, test, syn = _frame(600, 0), _frame(300, 4), _frame(400, 1), _frame(600, 2)
    res, models = any_utility_table(train=train, synthetic=syn, test=test, schema=SCHEMA, target=target,
                                    grids=GRIDS[target])
    sel = {side: m["selected"] for side, m in models.items()}
    sub = subgroup_report(train=train, synthetic=syn, schema=SCHEMA, test=test, models=sel, target=target)
    groups = {g["group"]: g for g in sub["groups"]}
    assert set(groups) == {"sex=0", "sex=1"} and all(groups[g][key] is not None for g in groups)
    assert sub["utility_gap"]["metric"] == key.removeprefix("tstr_")
    out = evaluate_table(train=train, holdout=holdout, test=test, synthetic=syn, schema=SCHEMA,
                         rng=np.random.default_rng(0), config={"areas": ["utility", "subgroups"],
                                                               "utility": {"target": target, "grids": GRIDS[target]}})
    names = {h["name"] for h in out["headline"]}
    assert {key, key.replace("tstr", "trtr"), f"worst_group_{key}"} <= names
