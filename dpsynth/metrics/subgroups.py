"""Subgroup effects: who is represented, how faithfully, and how well the downstream model serves them.

Per group (sensitive columns and their pairwise intersections, see :mod:`.groups`):
representation ratio (share in synthetic / share in real train), within-group fidelity (mean
marginal TVD of the non-sensitive columns, numerics binned on public bounds), and TSTR / TRTR
AUROC on the group's real test rows. Then best-worst gaps, worst-group utility, and the
fairness of the downstream models (demographic parity and equalized odds differences,
fairlearn). Groups below ``min_size`` real rows are listed with status "too small", never
dropped; groups whose representation ratio leaves ``band`` (or is ~0) are flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from dpsynth.data.schema import Schema
from dpsynth.errors import DataError
from dpsynth.metrics.base import MetricResult
from dpsynth.metrics.encoding import binary_labels, coerce_frame, discretize, n_codes, shares
from dpsynth.metrics.groups import attributes, group_masks
from dpsynth.metrics.targets import group_scores, target_kind


@dataclass(frozen=True)
class SubgroupConfig:
    band: tuple[float, float] = (0.8, 1.25)
    near_zero: float = 0.05  # a ratio below this is reported as "missing"
    min_size: int = 20  # real rows (train for representation/fidelity, test for utility)
    min_class_count: int = 3  # test rows of each outcome class a group needs for an AUROC
    n_bins: int = 4  # equal-width bins of a numeric sensitive column (public bounds)
    bins: dict | None = None  # explicit edges per numeric sensitive column
    intersections: bool = True
    columns: tuple | None = None  # override the schema's sensitive columns
    fidelity_bins: int = 10

    @classmethod
    def from_dict(cls, raw: dict | None) -> "SubgroupConfig":
        raw = dict(raw or {})
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise DataError(f"subgroup config: unknown key(s) {sorted(unknown)}")
        if "band" in raw:
            lo, hi = raw["band"]
            if not 0 < lo < 1 < hi:
                raise DataError(f"subgroup config: band must satisfy 0 < low < 1 < high, got {raw['band']}")
            raw["band"] = (float(lo), float(hi))
        if raw.get("columns") is not None:
            raw["columns"] = tuple(raw["columns"])
        return cls(**raw)


def _flag(ratio: float | None, cfg: SubgroupConfig) -> str | None:
    if ratio is None:
        return None
    if ratio < cfg.near_zero:
        return "missing"
    if ratio < cfg.band[0]:
        return "under-represented"
    if ratio > cfg.band[1]:
        return "over-represented"
    return None


def _group_tvd(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, columns, n_bins: int) -> float:
    tvds = []
    for name in columns:
        col = schema[name]
        size = n_codes(col, n_bins=n_bins)
        p = shares(discretize(real[name], col, n_bins=n_bins), size)
        q = shares(discretize(synth[name], col, n_bins=n_bins), size)
        tvds.append(0.5 * float(np.abs(p - q).sum()))
    return float(np.mean(tvds)) if tvds else 0.0


def _auroc(y: np.ndarray, p: np.ndarray, cfg: SubgroupConfig) -> float | None:
    counts = np.bincount(y, minlength=2)
    if len(y) < cfg.min_size or counts.min() < cfg.min_class_count:
        return None
    return float(roc_auc_score(y, p))


def _gap(groups: list[dict], key: str) -> dict:
    scored = [(g[key], g["group"]) for g in groups if g.get(key) is not None]
    if not scored:
        return {"best": None, "worst": None, "gap": None, "worst_group": None, "best_group": None}
    best, worst = max(scored), min(scored)
    return {"best": best[0], "worst": worst[0], "gap": best[0] - worst[0], "worst_group": worst[1],
            "best_group": best[1]}


def _fairness(y, pred, sensitive: np.ndarray) -> dict:
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    return {
        "demographic_parity_difference": float(demographic_parity_difference(y, pred, sensitive_features=sensitive)),
        "equalized_odds_difference": float(equalized_odds_difference(y, pred, sensitive_features=sensitive)),
    }


def subgroup_report(*, train: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, test: pd.DataFrame | None = None,
                    models: dict | None = None, target: str | None = None, config: SubgroupConfig | dict | None = None,
                    threshold: float = 0.5) -> dict:
    """Everything per group. ``models`` is {'tstr': FittedClassifier, 'trtr': FittedClassifier}
    (the CV-selected models of :func:`dpsynth.metrics.utility.utility_table`); without them, or
    without ``test``, the utility and fairness parts are skipped."""
    cfg = config if isinstance(config, SubgroupConfig) else SubgroupConfig.from_dict(config)
    attrs = attributes(schema, columns=cfg.columns, bins=cfg.bins, n_bins=cfg.n_bins)
    if not attrs:
        return {"attributes": {}, "groups": [], "flagged": [],
                "note": f"schema '{schema.name}' has no sensitive columns"}
    sensitive = {a.column for a in attrs}
    other = [n for n in schema.names if n not in sensitive and n != target]
    real_groups = group_masks(train, schema, attrs, intersections=cfg.intersections)
    syn_groups = group_masks(synthetic, schema, attrs, intersections=cfg.intersections)
    use_utility = models is not None and test is not None and target is not None
    kind = target_kind(schema[target]) if use_utility else None
    if use_utility:
        test_groups = group_masks(test, schema, attrs, intersections=cfg.intersections)
    if kind == "binary":
        y_test = binary_labels(test[target], schema[target], role="test")
        proba = {side: models[side].predict_proba(test) for side in ("tstr", "trtr")}
    groups = []
    for name, (cols, mask_r) in real_groups.items():
        mask_s = syn_groups[name][1]
        n_r, n_s = int(mask_r.sum()), int(mask_s.sum())
        share_r, share_s = n_r / len(train), n_s / len(synthetic)
        ratio = share_s / share_r if share_r > 0 else None
        big = n_r >= cfg.min_size
        g = {"group": name, "columns": list(cols), "n_real": n_r, "n_synthetic": n_s,
             "share_real": share_r, "share_synthetic": share_s, "representation_ratio": ratio,
             "status": "ok" if big else "too small", "flag": _flag(ratio, cfg) if big else None}
        g["fidelity_tvd"] = (_group_tvd(train[mask_r], synthetic[mask_s], schema, other, cfg.fidelity_bins)
                             if big and n_s > 0 else None)
        if use_utility:
            mask_t = test_groups[name][1]
            g["n_test"] = int(mask_t.sum())
            if kind == "binary":
                g["tstr_auroc"] = _auroc(y_test[mask_t], proba["tstr"][mask_t], cfg)
                g["trtr_auroc"] = _auroc(y_test[mask_t], proba["trtr"][mask_t], cfg)
            else:  # multi-class (macro AUROC, balanced accuracy) or numeric (R^2, MAE)
                g.update(group_scores(models, test, mask_t, schema, target, min_size=cfg.min_size,
                                      min_class_count=cfg.min_class_count))
            key = {"binary": "tstr_auroc", "multiclass": "tstr_macro_auroc", "numeric": "tstr_r2"}[kind]
            g["utility_status"] = "ok" if g[key] is not None else "too small"
        groups.append(g)
    out = {
        "attributes": {a.column: {"labels": list(a.labels), "edges": list(a.edges) if a.edges else None}
                       for a in attrs},
        "config": {"band": list(cfg.band), "near_zero": cfg.near_zero, "min_size": cfg.min_size,
                   "min_class_count": cfg.min_class_count, "intersections": cfg.intersections},
        "groups": groups,
        "flagged": [{"group": g["group"], "flag": g["flag"], "representation_ratio": g["representation_ratio"]}
                    for g in groups if g["flag"]],
        "too_small": [g["group"] for g in groups if g["status"] == "too small"],
    }
    ratios = [g["representation_ratio"] for g in groups
              if g["status"] == "ok" and g["representation_ratio"] is not None]
    # the ratio farthest from 1 on a log scale (0 and 2 are as bad as each other's mirror)
    out["worst_representation_ratio"] = max(ratios, key=lambda r: abs(np.log(max(r, 1e-6)))) if ratios else None
    out["min_representation_ratio"] = min(ratios) if ratios else None
    out["max_representation_ratio"] = max(ratios) if ratios else None
    tvds = [g["fidelity_tvd"] for g in groups if g["fidelity_tvd"] is not None]
    out["worst_group_fidelity_tvd"] = max(tvds) if tvds else None
    if use_utility and kind != "binary":
        main = {"multiclass": "macro_auroc", "numeric": "r2"}[kind]
        out["target_kind"] = kind
        out["utility_gap"] = {"metric": main, "tstr": _gap(groups, f"tstr_{main}"),
                              "trtr": _gap(groups, f"trtr_{main}")}
        if kind == "numeric":
            out["mae_gap"] = {"tstr": _gap(groups, "tstr_mae"), "trtr": _gap(groups, "trtr_mae")}
        else:
            out["balanced_accuracy_gap"] = {"tstr": _gap(groups, "tstr_balanced_accuracy"),
                                            "trtr": _gap(groups, "trtr_balanced_accuracy")}
        worst_t, worst_r = out["utility_gap"]["tstr"]["worst"], out["utility_gap"]["trtr"]["worst"]
        out[f"worst_group_{main}_ratio"] = worst_t / worst_r if worst_t is not None and worst_r else None
    elif use_utility:
        out["utility_gap"] = {"tstr": _gap(groups, "tstr_auroc"), "trtr": _gap(groups, "trtr_auroc")}
        worst_t, worst_r = out["utility_gap"]["tstr"]["worst"], out["utility_gap"]["trtr"]["worst"]
        out["worst_group_auroc_ratio"] = worst_t / worst_r if worst_t is not None and worst_r else None
        out["fairness"] = _fairness_block(test, schema, attrs, y_test, proba, threshold, cfg)
    return out


def _fairness_block(test, schema, attrs, y, proba, threshold, cfg) -> dict:
    out = {}
    for a in attrs:
        labels = a.label(test, schema[a.column])
        counts = pd.Series(labels).value_counts()
        keep = np.isin(labels, counts[counts >= cfg.min_size].index.to_numpy())
        if len(np.unique(labels[keep])) < 2:
            out[a.column] = {"status": "too small", "groups_compared": int(len(np.unique(labels[keep])))}
            continue
        out[a.column] = {"status": "ok", "groups_compared": int(len(np.unique(labels[keep]))),
                         **{side: _fairness(y[keep], (proba[side][keep] >= threshold).astype(int), labels[keep])
                            for side in ("tstr", "trtr")}}
    return out


class RepresentationRatio:
    """Share-in-synthetic / share-in-real farthest from 1 (log scale) over groups of >= ``min_size`` rows."""

    name: ClassVar[str] = "worst_representation_ratio"
    goal: ClassVar[str] = "target"
    range: ClassVar[tuple[float, float]] = (0.0, float("inf"))

    def __init__(self, *, config: SubgroupConfig | dict | None = None) -> None:
        self.config = config

    def evaluate(self, train, holdout, synthetic, schema, *, test=None, rng=None) -> MetricResult:
        res = subgroup_report(train=coerce_frame(train, schema, role="train"),
                              synthetic=coerce_frame(synthetic, schema, role="synthetic"), schema=schema,
                              config=self.config)
        value = res.get("worst_representation_ratio")
        return MetricResult(self.name, float("nan") if value is None else value, self.goal, self.range, res,
                            target=1.0)


class WorstGroupFidelity(RepresentationRatio):
    """Largest within-group mean marginal TVD over groups of at least ``min_size`` rows."""

    name: ClassVar[str] = "worst_group_fidelity_tvd"
    goal: ClassVar[str] = "minimize"
    range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def evaluate(self, train, holdout, synthetic, schema, *, test=None, rng=None) -> MetricResult:
        res = super().evaluate(train, holdout, synthetic, schema, test=test, rng=rng).breakdown
        value = res.get("worst_group_fidelity_tvd")
        return MetricResult(self.name, float("nan") if value is None else value, self.goal, self.range, res)
