"""The suite report merges every suite_runs*.jsonl, finds each method's default run by its params,
and calls a drop with more epsilon noise only when it is within two standard errors."""

import json

from evaluation.bench_suite import PACKAGE_DEFAULTS, load_runs, runs_file
from evaluation.suite_report import monotone, package_settings


def _run(method, setting, params, seed=0, table="t", eps=1.0):
    return {"table": table, "method": method, "setting": setting, "params": params, "epsilon": eps, "seed": seed,
            "tstr": {"val": 0.5, "test": 0.5}, "trtr": {"val": 1.0, "test": 1.0}, "rows": 10}


def test_load_runs_reads_every_runs_file_once_per_key(tmp_path):
    main = [_run("mst", "tw4", {"target_weight": 4.0}), _run("mst", "tw4", {"target_weight": 4.0}, seed=1)]
    other = [_run("dp-gan", "default", {}), _run("mst", "tw4", {"target_weight": 4.0})]  # a repeated key
    (tmp_path / "suite_runs.jsonl").write_text("\n".join(map(json.dumps, main)) + "\n")
    (tmp_path / "suite_runs_dpsgd.jsonl").write_text("\n".join(map(json.dumps, other)) + "\n")
    (tmp_path / "elsewhere.jsonl").write_text(json.dumps(_run("aim", "x", {})) + "\n")  # not a suite_runs file
    runs = load_runs(tmp_path)
    assert sorted((r["method"], r["seed"]) for r in runs) == [("dp-gan", 0), ("mst", 0), ("mst", 1)]
    assert runs_file("dp-gan").name == "suite_runs_dpsgd.jsonl" and runs_file("aim").name == "suite_runs.jsonl"


def test_package_settings_match_the_current_defaults_by_params():
    runs = [_run("mst", "default", {"bins": 16, "target_weight": 1.0}), _run("mst", "tw4", {"target_weight": 4.0}),
            _run("dp-gan", "sgd16", {}), _run("dp-gan", "mb128", {"min_batch_size": 128}),
            _run("dp-gan", "newer", {"an_option_this_checkout_lacks": 1})]  # another branch's generator
    found = package_settings(runs, {"mst": "default"})
    assert found["mst"] == "tw4"  # the fallback label's params are no longer the default
    assert found["dp-gan"] == "sgd16"  # another branch's label, found by its (default) params
    assert set(PACKAGE_DEFAULTS) >= {"aim", "mst", "auto", "independent"}


def test_monotone_tells_noise_from_a_drop():
    assert monotone([[0.8, 0.82], [0.85, 0.86], [0.9, 0.91]]) == "yes"
    assert monotone([[0.85, 0.95, 0.80], [0.80, 0.90, 0.86]]).startswith("within noise")
    assert monotone([[0.90, 0.91, 0.92], [0.70, 0.71, 0.72]]).startswith("NO (drop")
    assert monotone([[0.9], [0.8]]).startswith("NO") and "1 seed" in monotone([[0.9], [0.8]])


def test_rule_space_is_a_parameter_and_the_left_out_mean_is_reported():
    """A wider rule space can win on the validation splits; rule_lodo scores it on the left-out
    tables and ends with the mean row (the figure that decides whether auto adopts it)."""
    from evaluation.suite_report import RULE_SETTINGS, learn_rule, rule_lodo

    def run(table, ms, val, test, seed):
        m, s = ms.split(":")
        r = _run(m, s, {}, seed=seed, table=table)
        return {**r, "tstr": {"val": val, "test": test}, "rows": 1000}

    tables = ["gbsg2", "actg175", "wdbc"]  # 9, 26, 31 columns (their public schemas)
    runs = [run(t, ms, 0.5, 0.5, s) for t in tables for ms in RULE_SETTINGS for s in (0, 1)]
    runs += [run(t, "aim:no3way", 0.9, 0.6 if t == "wdbc" else 0.4, s) for t in tables for s in (0, 1)]
    runs += [run(t, "independent:default", 0.3, 0.3, 0) for t in tables]
    assert learn_rule(runs, tables)["wide"] in RULE_SETTINGS
    wider = RULE_SETTINGS + ("aim:no3way",)
    assert learn_rule(runs, tables, wider)["wide"] == "aim:no3way"
    lines = rule_lodo(runs, tables, wider)
    assert lines[-1].startswith("| mean over left-out tables") and "0.467 (3 tables)" in lines[-1], lines[-1]
