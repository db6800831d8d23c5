"""The evaluation suite: every number about one synthetic table, as plain JSON-able values.

``evaluate_table`` runs four areas on the same splits:

- utility: TSTR vs TRTR classification on the real test split (+ Cox C-index and Kaplan-Meier
  distance when the schema declares duration/event);
- fidelity: column shapes, association matrix difference, detection AUROC, PRDC,
  alpha-precision / beta-recall / authenticity;
- privacy: DCR, DOMIAS and (given ``fit_sample``) shadow-model membership attacks, on all
  candidates and on the top-k outliers, and the empirical epsilon lower bound printed next to
  the claimed epsilon;
- subgroups: representation, within-group fidelity and utility, fairness.

plus ``headline`` (MetricResult dicts with goal and range) and ``verdicts`` (traffic lights
with the thresholds used, :mod:`.thresholds`).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dpsynth.data.schema import Schema
from dpsynth.errors import ConfigError, DataError, DpsynthError
from dpsynth.metrics.base import MetricResult, _plain
from dpsynth.metrics.encoding import coerce_frame
from dpsynth.metrics.fidelity import AssociationDifference, ColumnShapes, DetectionAUROC
from dpsynth.metrics.manifold import _encoded_pair, alpha_beta_authenticity, prdc_scores
from dpsynth.metrics.privacy_attacks import (
    DCRAttack,
    DOMIASAttack,
    FitSample,
    ShadowModelAttack,
    _result,
    build_candidates,
)
from dpsynth.metrics.subgroups import SubgroupConfig, subgroup_report
from dpsynth.metrics.survival import cox_table, km_distance
from dpsynth.metrics.threads import one_thread
from dpsynth.metrics.thresholds import checks_from_config, verdicts
from dpsynth.metrics.targets import HEADLINE, any_utility_table, target_kind
from dpsynth.metrics.utility import utility_table

AREAS = ("utility", "fidelity", "privacy", "subgroups")

DEFAULT_CONFIG: dict = {
    "areas": list(AREAS),
    "utility": {"target": None, "exclude": [], "folds": 3, "grids": None},
    "survival": {"enabled": True, "penalizers": [0.01, 0.1, 1.0], "folds": 3},
    "fidelity": {"detection_folds": 3, "max_rows": 1500, "prdc_k": 5, "top_columns": 4},
    "privacy": {"top_k": 50, "confidence": 0.95, "max_per_side": None, "outlier_k": 5, "n_shadow": 4,
                "domias_density": "kde", "domias_components": 20, "domias_bandwidth": None},
    "subgroups": {},
    "verdicts": {},
}


def load_evaluation_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"evaluation config not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"evaluation config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return merge_config(raw)


def merge_config(raw: dict | None) -> dict:
    """Defaults with ``raw`` laid over them; unknown sections or keys raise ConfigError."""
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    for section, values in (raw or {}).items():
        if section not in cfg:
            raise ConfigError(f"evaluation config: unknown section '{section}' (known: {sorted(cfg)})")
        if section == "areas":
            bad = set(values) - set(AREAS)
            if bad:
                raise ConfigError(f"evaluation config: unknown area(s) {sorted(bad)} (known: {list(AREAS)})")
            cfg["areas"] = list(values)
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"evaluation config: section '{section}' must be a mapping")
        if section not in ("subgroups", "verdicts"):
            bad = set(values) - set(cfg[section])
            if bad:
                raise ConfigError(f"evaluation config: unknown key(s) {sorted(bad)} in '{section}'")
        cfg[section].update(values)
    SubgroupConfig.from_dict(cfg["subgroups"])  # validate early
    checks_from_config(cfg["verdicts"])
    return cfg


def _timed(fn, timings: dict, key: str, errors: dict):
    """Run one area; a DpsynthError (e.g. a one-class synthetic target) is recorded, not raised,
    so the other areas still report. The area's verdict is then red."""
    start = time.perf_counter()
    try:
        return fn()
    except DpsynthError as exc:
        errors[key] = str(exc)
        return None
    finally:
        timings[key] = round(time.perf_counter() - start, 3)


def evaluate_table(
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    test: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    rng: np.random.Generator,
    config: dict | None = None,
    fit_sample: FitSample | None = None,
    claimed_epsilon: float | None = None,
    claimed_delta: float | None = None,
    units: dict | None = None,
) -> dict:
    """Evaluate one synthetic table against the real splits; every value plain JSON.

    ``fit_sample(train_frame, rng) -> synthetic_frame`` (optional) enables the shadow-model
    attack; ``claimed_epsilon`` / ``claimed_delta`` are printed next to the empirical lower bound
    (and delta enters the bound). ``units`` ({"train", "holdout", "test"}: a privacy-unit id per
    row of each split) makes the membership attacks per patient (:mod:`.unit_attacks`).
    Runs single-threaded (see :mod:`.threads`).
    """
    with one_thread():
        return _evaluate(train=train, holdout=holdout, test=test, synthetic=synthetic, schema=schema, rng=rng,
                         config=config, fit_sample=fit_sample, claimed_epsilon=claimed_epsilon,
                         claimed_delta=claimed_delta, units=units)


def _evaluate(*, train, holdout, test, synthetic, schema, rng, config, fit_sample, claimed_epsilon,
              claimed_delta, units=None) -> dict:
    if not isinstance(rng, np.random.Generator):
        raise DataError("evaluate_table needs rng=numpy.random.Generator (e.g. numpy.random.default_rng(0))")
    cfg = merge_config(config)
    train = coerce_frame(train, schema, role="train")
    holdout = coerce_frame(holdout, schema, role="holdout")
    test = coerce_frame(test, schema, role="test")
    synthetic = coerce_frame(synthetic, schema, role="synthetic")
    if len(test) == len(holdout) and test.equals(holdout):
        raise DataError("test and holdout are the same rows; membership attacks need them disjoint")
    rngs = dict(zip(AREAS, rng.spawn(len(AREAS))))
    timings: dict = {}
    results: dict = {
        "meta": {"schema": schema.name, "n_train": len(train), "n_holdout": len(holdout), "n_test": len(test),
                 "n_synthetic": len(synthetic), "claimed_epsilon": claimed_epsilon, "claimed_delta": claimed_delta,
                 "config": cfg},
    }
    headline: list[MetricResult] = []
    errors: dict[str, str] = {}
    models = None
    areas = cfg["areas"]
    if "utility" in areas or "subgroups" in areas:
        if schema.target is not None or cfg["utility"]["target"]:
            out = _timed(lambda: _utility(train, synthetic, test, schema, cfg, rngs["utility"], headline),
                         timings, "utility", errors)
            utility, models = out if out is not None else ({"error": errors["utility"]}, None)
        else:
            utility = {"skipped": f"schema '{schema.name}' declares no target"}
        if "utility" in areas:
            results["utility"] = utility
    if "fidelity" in areas:
        results["fidelity"] = _timed(lambda: _fidelity(train, synthetic, schema, cfg, rngs["fidelity"], headline),
                                     timings, "fidelity", errors)
    if "privacy" in areas:
        results["privacy"] = _timed(lambda: _privacy(train, holdout, test, synthetic, schema, cfg, rngs["privacy"],
                                                     fit_sample, claimed_epsilon, claimed_delta, headline,
                                                     units=units),
                                    timings, "privacy", errors)
    if "subgroups" in areas:
        target = (utility.get("classification") or utility.get("regression") or {}).get("target") if models else None
        sel = {side: m["selected"] for side, m in models.items()} if models else None
        results["subgroups"] = _timed(lambda: subgroup_report(train=train, synthetic=synthetic, schema=schema,
                                                              test=test, models=sel, target=target,
                                                              config=cfg["subgroups"]), timings, "subgroups", errors)
        if results["subgroups"] is not None:
            _subgroup_headline(results["subgroups"], headline)
    for area, message in errors.items():
        if area in areas:
            results[area] = {"error": message}
    results["headline"] = [m.to_dict() for m in headline]
    results["verdicts"] = _with_errors(verdicts(_verdict_values(results), checks_from_config(cfg["verdicts"])),
                                       errors, areas)
    results["meta"]["seconds"] = timings
    return _plain(results)


# ---- areas ---------------------------------------------------------------------------------------
def _utility(train, synthetic, test, schema, cfg, rng, headline):
    u, s = cfg["utility"], cfg["survival"]
    seed = int(rng.integers(2**31 - 1))
    out: dict = {}
    target = u["target"] or schema.target
    if target in schema and target_kind(schema[target]) != "binary":  # multi-class or numeric target
        res, models = any_utility_table(train=train, synthetic=synthetic, test=test, schema=schema, target=target,
                                        exclude=tuple(u["exclude"]), grids=u["grids"], folds=u["folds"], seed=seed)
        key = HEADLINE[res["kind"]]
        out["classification" if res["kind"] == "multiclass" else "regression"] = res
        ratio = res[f"{key}_ratio"]["selected"]
        rng_ = (0.0, 1.0) if key == "macro_auroc" else (-float("inf"), 1.0)
        headline.append(MetricResult(f"tstr_{key}", res["tstr"]["selected"][key], "maximize", rng_))
        headline.append(MetricResult(f"trtr_{key}", res["trtr"]["selected"][key], "maximize", rng_))
        headline.append(MetricResult(f"tstr_{key}_ratio", np.nan if ratio is None else ratio, "maximize",
                                     (-float("inf"), float("inf")), target=1.0))
        if key == "r2":
            headline.append(MetricResult("tstr_mae", res["tstr"]["selected"]["mae"], "minimize", (0.0, float("inf"))))
            headline.append(MetricResult("trtr_mae", res["trtr"]["selected"]["mae"], "minimize", (0.0, float("inf"))))
        return out, models
    cls, models = utility_table(train=train, synthetic=synthetic, test=test, schema=schema, target=u["target"],
                                exclude=tuple(u["exclude"]), grids=u["grids"], folds=u["folds"], seed=seed)
    out["classification"] = cls
    ratio = cls["auroc_ratio"]["selected"]
    headline.append(MetricResult("tstr_auroc", cls["tstr"]["selected"]["auroc"], "maximize", (0.0, 1.0)))
    headline.append(MetricResult("trtr_auroc", cls["trtr"]["selected"]["auroc"], "maximize", (0.0, 1.0)))
    headline.append(MetricResult("tstr_auroc_ratio", np.nan if ratio is None else ratio, "maximize",
                                 (0.0, float("inf")), target=1.0))
    if s["enabled"] and schema.duration and schema.event:
        cox = cox_table(train=train, synthetic=synthetic, test=test, schema=schema,
                        penalizers=tuple(s["penalizers"]), folds=s["folds"], seed=seed)
        km = km_distance(train, synthetic, schema)
        km["real_vs_real"] = {k: v for k, v in km_distance(train, test, schema, horizon=km["horizon"]).items()
                              if k in ("sup", "integrated")}
        out["survival"] = {"cox": cox, "kaplan_meier": km}
        headline.append(MetricResult("tstr_c_index", cox["tstr"]["c_index"], "maximize", (0.0, 1.0)))
        headline.append(MetricResult("trtr_c_index", cox["trtr"]["c_index"], "maximize", (0.0, 1.0)))
        headline.append(MetricResult("km_sup_difference", km["sup"], "minimize", (0.0, 1.0)))
        headline.append(MetricResult("km_integrated_difference", km["integrated"], "minimize", (0.0, 1.0)))
    return out, models


def _fidelity(train, synthetic, schema, cfg, rng, headline):
    f = cfg["fidelity"]
    shapes = ColumnShapes(top_columns=f["top_columns"]).compare(train, synthetic, schema, rng=rng)
    assoc = AssociationDifference().compare(train, synthetic, schema, rng=rng)
    detect = DetectionAUROC(folds=f["detection_folds"], max_rows=f["max_rows"]).compare(train, synthetic, schema,
                                                                                         rng=rng)
    real_x, synth_x, real_all = _encoded_pair(train, synthetic, schema, rng, f["max_rows"])
    prdc = prdc_scores(real_x, synth_x, k=f["prdc_k"])
    aba = alpha_beta_authenticity(real_x, synth_x, real_reference=real_all, k=f["prdc_k"])
    headline.extend([shapes, assoc, detect])
    headline.append(MetricResult("prdc_coverage", min(prdc["coverage"], 1.0), "maximize", (0.0, 1.0)))
    for key in ("alpha_precision", "beta_recall", "authenticity"):
        headline.append(MetricResult(key, aba[key], "maximize", (0.0, 1.0)))
    return {"column_shapes": {"value": shapes.value, **shapes.breakdown},
            "association": {"value": assoc.value, **assoc.breakdown},
            "detection": {"auroc": detect.value, **detect.breakdown},
            "prdc": {**prdc, "k": f["prdc_k"]}, "alpha_beta_authenticity": aba}


def _privacy(train, holdout, test, synthetic, schema, cfg, rng, fit_sample, claimed_epsilon, claimed_delta, headline,
             units=None):
    p = cfg["privacy"]
    n_attacks = 3 if fit_sample is not None else 2
    confidence = 1 - (1 - p["confidence"]) / n_attacks  # Bonferroni: the max over attacks keeps its level
    common = {"top_k": p["top_k"], "delta": float(claimed_delta or 0.0), "confidence": confidence}
    attacks = {"dcr": DCRAttack(**common),
               "domias": DOMIASAttack(density=p["domias_density"], n_components=p["domias_components"],
                                      bandwidth=p["domias_bandwidth"], **common)}
    if fit_sample is not None:
        attacks["shadow"] = ShadowModelAttack(fit_sample=fit_sample, reference_frame=test, n_shadow=p["n_shadow"],
                                              **common)
    if units is not None:  # a member is a patient with all of their rows
        from dpsynth.metrics.unit_attacks import build_unit_candidates

        cand = build_unit_candidates(train, holdout, schema, train_units=units["train"],
                                     holdout_units=units["holdout"], rng=rng, reference=test,
                                     reference_units=units["test"], max_per_side=p["max_per_side"],
                                     outlier_k=p["outlier_k"])
    else:
        cand = build_candidates(train, holdout, schema, rng=rng, reference=test, max_per_side=p["max_per_side"],
                                outlier_k=p["outlier_k"])
    reports = {name: attack.run(cand, synthetic, rng=rng) for name, attack in attacks.items()}
    for name, rep in reports.items():
        headline.append(_result(f"{name}_attack_auroc", rep))
    summary = _privacy_summary(reports, claimed_epsilon, claimed_delta, confidence=p["confidence"])
    return {"attacks": reports, "summary": summary,
            "candidates": {"unit": "patient (all rows)" if units is not None else "row",
                           "members": int(cand.labels.sum()), "non_members": int((1 - cand.labels).sum()),
                           "reference_rows": int(len(cand.reference)), "top_k": p["top_k"],
                           "outlier_score": "mean distance to the 5 nearest real test rows"},
            "shadow": "run" if fit_sample is not None else "skipped (no fit_sample given)"}


def _privacy_summary(reports: dict, claimed_epsilon, claimed_delta, *, confidence: float) -> dict:
    def best(key, getter):
        vals = [(getter(r), n) for n, r in reports.items() if getter(r) is not None]
        if not vals:
            return {key: None, f"{key}_attack": None}
        v, n = max(vals)
        return {key: v, f"{key}_attack": n}

    out = {}
    out.update(best("max_auroc", lambda r: r["auroc"]))
    out.update(best("max_tpr_at_fpr_0.01", lambda r: r["tpr_at_fpr_0.01"]))
    out.update(best("max_tpr_at_fpr_0.001", lambda r: r["tpr_at_fpr_0.001"]))
    out.update(best("max_outlier_auroc", lambda r: r["outliers"]["auroc"]))
    out.update(best("epsilon_lower_bound", lambda r: r["epsilon"]["epsilon_lower_bound"]))
    out["claimed_epsilon"] = claimed_epsilon
    out["claimed_delta"] = claimed_delta
    out["epsilon_confidence"] = confidence
    out["epsilon_note"] = ("lower bound at the given joint confidence (Clopper-Pearson, threshold chosen on a "
                           "calibration half, Bonferroni over attacks); it is evidence, not a proof, and must stay "
                           "below the claimed epsilon")
    return out


def _subgroup_headline(sub: dict, headline: list) -> None:
    ratio = sub.get("worst_representation_ratio")
    if ratio is not None:
        headline.append(MetricResult("worst_representation_ratio", ratio, "target", (0.0, float("inf")), target=1.0))
    if sub.get("worst_group_fidelity_tvd") is not None:
        headline.append(MetricResult("worst_group_fidelity_tvd", sub["worst_group_fidelity_tvd"], "minimize",
                                     (0.0, 1.0)))
    gap = sub.get("utility_gap", {}).get("tstr", {})
    metric = sub.get("utility_gap", {}).get("metric", "auroc")  # auroc (binary), macro_auroc, r2
    if gap.get("worst") is not None:
        bounds = (-float("inf"), 1.0) if metric == "r2" else (0.0, 1.0)
        headline.append(MetricResult(f"worst_group_tstr_{metric}", gap["worst"], "maximize", bounds,
                                     breakdown={"group": gap["worst_group"]}))
        headline.append(MetricResult(f"group_tstr_{metric}_gap", gap["gap"], "minimize", (0.0, float("inf"))))


# ---- verdict inputs -----------------------------------------------------------------------------
def _with_errors(out: dict, errors: dict, areas) -> dict:
    for area, message in errors.items():
        if area not in areas:
            continue
        block = out.setdefault(area, {"verdict": "n/a", "checks": []})
        block["checks"].insert(0, {"check": "error", "label": f"could not evaluate: {message}", "value": None,
                                   "direction": "lower", "green": 0, "amber": 0, "verdict": "red"})
        block["verdict"] = "red"
    return out


def _verdict_values(results: dict) -> dict:
    v: dict = {}
    u = results.get("utility") or {}
    if u and "classification" in u:  # binary: AUROC ratio; multi-class: macro AUROC ratio
        ratios = u["classification"].get("auroc_ratio") or u["classification"].get("macro_auroc_ratio") or {}
        v["tstr_auroc_ratio"] = ratios.get("selected")
    if "survival" in u:
        v["cox_cindex_ratio"] = u["survival"]["cox"]["c_index_ratio"]
        v["km_integrated_difference"] = u["survival"]["kaplan_meier"]["integrated"]
    f = results.get("fidelity")
    if f and "error" not in f:
        v["detection_auroc_excess"] = abs(f["detection"]["auroc"] - 0.5)
        v["column_distance"] = f["column_shapes"]["value"]
        v["association_difference"] = f["association"]["value"]
    p = results.get("privacy")
    if p and "error" not in p:
        s = p["summary"]
        v["max_attack_auroc"] = s["max_auroc"]
        v["max_tpr_at_fpr_0.01"] = s["max_tpr_at_fpr_0.01"]
        eps = s["epsilon_lower_bound"]
        claimed = s["claimed_epsilon"]
        if eps is not None and claimed:
            v["epsilon_lb_over_claimed"] = eps / claimed
        elif eps is not None:
            v["epsilon_lb_unclaimed"] = eps
    g = results.get("subgroups")
    if g and g.get("groups"):
        v["flagged_groups"] = len(g["flagged"])
        v["worst_group_auroc_ratio"] = g.get("worst_group_auroc_ratio")
        fair = [a for a in g.get("fairness", {}).values() if a.get("status") == "ok"]
        if fair:
            v["equalized_odds_increase"] = max(a["tstr"]["equalized_odds_difference"]
                                               - a["trtr"]["equalized_odds_difference"] for a in fair)
    return v
