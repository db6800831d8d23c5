"""evaluate_table end to end (fast config) and the traffic-light thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from metrics_testdata import FAST_CONFIG, copy_rows

from dpsynth.errors import ConfigError, DpsynthError
from dpsynth.metrics.base import GOALS
from dpsynth.metrics.suite import evaluate_table, load_evaluation_config, merge_config
from dpsynth.metrics.thresholds import DEFAULT_CHECKS, Check, checks_from_config, verdicts

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def copy_results(schema, splits, synthetics):
    return evaluate_table(train=splits.train, holdout=splits.holdout, test=splits.test, synthetic=synthetics["copy"],
                          schema=schema, rng=np.random.default_rng(0), config=FAST_CONFIG, fit_sample=copy_rows,
                          claimed_epsilon=1.0, claimed_delta=1e-5)


def test_results_are_plain_json_grouped_by_area(copy_results):
    text = json.dumps(copy_results, allow_nan=False)
    assert json.loads(text) == copy_results
    for area in ("utility", "fidelity", "privacy", "subgroups", "verdicts", "headline", "meta"):
        assert area in copy_results
    assert set(copy_results["privacy"]["attacks"]) == {"dcr", "domias", "shadow"}
    assert copy_results["meta"]["n_synthetic"] == copy_results["meta"]["n_train"]


def test_headline_metrics_declare_goal_and_range(copy_results):
    names = {m["name"] for m in copy_results["headline"]}
    assert {"tstr_auroc", "detection_auroc", "dcr_attack_auroc", "authenticity", "tstr_c_index"} <= names
    for m in copy_results["headline"]:
        assert m["goal"] in GOALS
        lo, hi = (float(x) for x in m["range"])
        assert lo <= float(m["value"]) <= hi, m
        if m["goal"] == "target":
            assert "target" in m


def test_copy_release_turns_privacy_red_and_beats_the_claimed_epsilon(copy_results):
    s = copy_results["privacy"]["summary"]
    assert s["max_auroc"] > 0.99 and s["max_tpr_at_fpr_0.01"] > 0.9
    assert s["epsilon_lower_bound"] > 3.0 > s["claimed_epsilon"]
    assert s["epsilon_confidence"] == 0.95
    privacy = copy_results["verdicts"]["privacy"]
    assert privacy["verdict"] == "red"
    over = next(c for c in privacy["checks"] if c["check"] == "epsilon_lb_over_claimed")
    assert over["verdict"] == "red" and over["value"] > 3.0
    assert copy_results["verdicts"]["utility"]["checks"][0]["verdict"] == "green"


def test_independent_release_is_private_but_not_useful(schema, splits, synthetics):
    res = evaluate_table(train=splits.train, holdout=splits.holdout, test=splits.test,
                         synthetic=synthetics["independent"], schema=schema, rng=np.random.default_rng(1),
                         config={**FAST_CONFIG, "areas": ["fidelity", "privacy"]})
    assert abs(res["privacy"]["summary"]["max_auroc"] - 0.5) < 0.08
    assert res["verdicts"]["privacy"]["verdict"] in ("green", "amber")
    assert res["verdicts"]["fidelity"]["verdict"] == "red"
    assert "utility" not in res and "subgroups" not in res


def test_bad_inputs(schema, splits, synthetics):
    kwargs = dict(train=splits.train, holdout=splits.holdout, test=splits.test, schema=schema)
    with pytest.raises(DpsynthError, match="rng"):
        evaluate_table(**kwargs, synthetic=synthetics["real"], rng=0)
    with pytest.raises(DpsynthError, match="synthetic.*'cens'"):
        evaluate_table(**kwargs, synthetic=synthetics["real"].drop(columns=["cens"]), rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="unknown key"):
        merge_config({"privacy": {"topk": 3}})
    with pytest.raises(ConfigError, match="unknown section"):
        merge_config({"speed": {}})


def test_verdict_logic_and_overrides():
    c = Check("privacy", "x", "x", "lower", 0.55, 0.6)
    assert [c.verdict(v) for v in (0.5, 0.58, 0.7, None)] == ["green", "amber", "red", "n/a"]
    h = Check("utility", "y", "y", "higher", 0.95, 0.85)
    assert [h.verdict(v) for v in (0.97, 0.9, 0.5)] == ["green", "amber", "red"]
    checks = checks_from_config({"max_attack_auroc": {"green": 0.52}})
    assert next(c for c in checks if c.key == "max_attack_auroc").green == 0.52
    out = verdicts({"max_attack_auroc": 0.53, "max_tpr_at_fpr_0.01": 0.01}, checks)
    assert out["privacy"]["verdict"] == "amber"
    assert out["utility"]["verdict"] == "n/a"
    with pytest.raises(ConfigError):
        checks_from_config({"max_attack_auroc": {"green": 0.7, "amber": 0.6}})
    with pytest.raises(ConfigError):
        checks_from_config({"nope": {}})


def test_shipped_threshold_config_matches_the_defaults():
    cfg = load_evaluation_config(REPO / "configs" / "evaluation_thresholds.yaml")
    checks = {c.key: c for c in checks_from_config(cfg["verdicts"])}
    for default in DEFAULT_CHECKS:
        assert checks[default.key] == default


def test_an_area_that_cannot_be_evaluated_is_red_not_fatal(schema, splits, synthetics):
    one_class = synthetics["real"][synthetics["real"]["cens"].astype(int) == 0].reset_index(drop=True)
    res = evaluate_table(train=splits.train, holdout=splits.holdout, test=splits.test, synthetic=one_class,
                         schema=schema, rng=np.random.default_rng(0),
                         config={**FAST_CONFIG, "areas": ["utility", "subgroups"]})
    assert "rarer class" in res["utility"]["error"]
    assert res["verdicts"]["utility"]["verdict"] == "red"
    assert res["subgroups"]["groups"] and "utility_gap" not in res["subgroups"]
    from dpsynth.reports.report import format_terminal_summary
    assert "could not evaluate" in format_terminal_summary(res)
