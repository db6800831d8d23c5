"""Subgroup representation, fidelity, utility and fairness."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_testdata import FAST_CONFIG

from dpsynth.errors import DpsynthError
from dpsynth.metrics.groups import attributes
from dpsynth.metrics.subgroups import RepresentationRatio, SubgroupConfig, WorstGroupFidelity, subgroup_report
from dpsynth.metrics.utility import utility_table


def _by_name(report):
    return {g["group"]: g for g in report["groups"]}


def test_dropped_subgroup_is_zero_and_flagged(schema, splits, synthetics):
    rep = subgroup_report(train=splits.train, synthetic=synthetics["no_race1"], schema=schema)
    groups = _by_name(rep)
    for name in ("race=1", "race=1 & gender=0", "race=1 & gender=1"):
        assert groups[name]["status"] == "ok"
        assert groups[name]["representation_ratio"] == 0.0
        assert groups[name]["flag"] == "missing"
        assert groups[name]["fidelity_tvd"] is None  # nothing to compare with
    flagged = {f["group"] for f in rep["flagged"]}
    assert {"race=1", "race=1 & gender=0"} <= flagged
    assert groups["race=0"]["representation_ratio"] == pytest.approx(len(splits.train) / groups["race=0"]["n_real"])
    assert rep["min_representation_ratio"] == 0.0


def test_real_vs_real_representation_is_about_one(schema, splits, synthetics):
    rep = subgroup_report(train=splits.train, synthetic=synthetics["real"], schema=schema)
    for g in rep["groups"]:
        if g["status"] == "ok" and g["n_real"] >= 100 and len(g["columns"]) == 1:
            assert 0.75 < g["representation_ratio"] < 1.33, g
    assert not [f for f in rep["flagged"] if f["flag"] == "missing"]
    assert rep["worst_group_fidelity_tvd"] < 0.2


def test_small_groups_are_listed_not_hidden_and_age_uses_public_bins(schema, splits, synthetics):
    rep = subgroup_report(train=splits.train, synthetic=synthetics["real"], schema=schema)
    groups = _by_name(rep)
    assert rep["attributes"]["age"]["edges"][0] == schema["age"].low
    assert rep["attributes"]["age"]["edges"][-1] == schema["age"].high
    oldest = [n for n in groups if n.startswith("age=[70.5")]
    assert oldest and all(groups[n]["status"] == "too small" for n in oldest)
    assert set(oldest) <= set(rep["too_small"])
    custom = attributes(schema, bins={"age": [12, 30, 40, 90]})
    assert custom[0].labels == ("[12, 30)", "[30, 40)", "[40, 90]")


def test_per_group_utility_gap_and_fairness(schema, splits, synthetics):
    grids = FAST_CONFIG["utility"]["grids"]
    _, models = utility_table(train=splits.train, synthetic=synthetics["no_race1"], test=splits.test, schema=schema,
                              grids=grids)
    rep = subgroup_report(train=splits.train, synthetic=synthetics["no_race1"], schema=schema, test=splits.test,
                          models={s: models[s]["selected"] for s in ("tstr", "trtr")}, target="cens")
    race1 = _by_name(rep)["race=1"]
    assert race1["n_test"] > 100 and 0.5 < race1["tstr_auroc"] <= 1.0 and 0.5 < race1["trtr_auroc"] <= 1.0
    gap = rep["utility_gap"]["tstr"]
    assert gap["gap"] == pytest.approx(gap["best"] - gap["worst"]) and gap["worst_group"]
    # the worst-group ratio divides a group's TSTR by the SAME group's TRTR (issue 17)
    within = {g["group"]: g["tstr_auroc"] / g["trtr_auroc"] for g in rep["groups"]
              if g.get("tstr_auroc") is not None and g.get("trtr_auroc")}
    assert rep["worst_group_auroc_ratio"] == pytest.approx(min(within.values()))
    assert within[rep["worst_group_auroc_ratio_group"]] == pytest.approx(rep["worst_group_auroc_ratio"])
    for attr in ("race", "gender"):
        fair = rep["fairness"][attr]
        assert fair["status"] == "ok"
        for side in ("tstr", "trtr"):
            assert 0.0 <= fair[side]["demographic_parity_difference"] <= 1.0
            assert 0.0 <= fair[side]["equalized_odds_difference"] <= 1.0


def test_metric_classes_and_config_validation(schema, splits, synthetics):
    ratio = RepresentationRatio().evaluate(splits.train, splits.holdout, synthetics["no_race1"], schema)
    assert ratio.value == 0.0 and ratio.goal == "target" and ratio.target == 1.0
    fid = WorstGroupFidelity().evaluate(splits.train, splits.holdout, synthetics["real"], schema)
    assert 0.0 <= fid.value <= 1.0
    narrow = subgroup_report(train=splits.train, synthetic=synthetics["real"], schema=schema,
                             config={"band": [0.99, 1.01], "intersections": False})
    assert narrow["flagged"] and all(" & " not in g["group"] for g in narrow["groups"])
    with pytest.raises(DpsynthError, match="band"):
        SubgroupConfig.from_dict({"band": [1.2, 0.8]})
    with pytest.raises(DpsynthError, match="unknown"):
        SubgroupConfig.from_dict({"bogus": 1})
    with pytest.raises(DpsynthError, match="increasing"):
        attributes(schema, bins={"age": [50, 20]})
    assert np.isfinite(ratio.value)
