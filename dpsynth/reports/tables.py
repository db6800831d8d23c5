"""The report's tables, built once from the results dict and rendered as Markdown or HTML.

A table is ``(title, headers, rows)``, every cell already a short string.
"""

from __future__ import annotations

import json
from typing import Any

Table = tuple[str, list[str], list[list[str]]]

LIGHTS = {"green": "GREEN", "amber": "AMBER", "red": "RED", "n/a": "n/a"}


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v, digits)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return json.dumps(value, default=str)
    return str(value)


def _delta(value) -> str:
    return "-" if value is None else f"{float(value):.3g}"


def verdict_table(results: dict) -> Table:
    rows = []
    for area, block in results.get("verdicts", {}).items():
        for c in block["checks"]:
            if c["verdict"] == "n/a" and c["value"] is None:
                continue
            limit = f"{'>=' if c['direction'] == 'higher' else '<='} {fmt(c['green'], 2)} / {fmt(c['amber'], 2)}"
            rows.append([area, LIGHTS[c["verdict"]], c["label"], fmt(c["value"]), limit])
    return ("Verdicts", ["area", "verdict", "check", "value", "green / amber limit"], rows)


def epsilon_table(results: dict, ledger: dict | None) -> Table:
    s = results.get("privacy", {}).get("summary", {})
    from dpsynth.reports.readable import eps_text

    rows = [["claimed epsilon (ledger)", eps_text(s.get("claimed_epsilon") if s.get("claimed_epsilon") is not None
                                                  else (ledger or {}).get("epsilon"))],
            ["claimed delta", _delta(s.get("claimed_delta") if s.get("claimed_delta") is not None
                                     else (ledger or {}).get("delta"))],
            ["empirical epsilon lower bound", eps_text(s.get("epsilon_lower_bound"))],
            ["from attack", fmt(s.get("epsilon_lower_bound_attack"))],
            ["joint confidence", fmt(s.get("epsilon_confidence"), 2)]]
    return ("Claimed vs empirical epsilon", ["quantity", "value"], rows)


def ledger_table(ledger: dict | None) -> Table | None:
    if not ledger:
        return None
    rows = []
    for e in ledger.get("entries", []):
        detail = {k: v for k, v in e.items() if k not in ("mechanism", "purpose")}
        rows.append([fmt(e.get("mechanism")), fmt(e.get("purpose")), fmt(detail)])
    rows.append(["total", f"accountant {ledger.get('accountant')}", f"epsilon {fmt(ledger.get('epsilon'))}, "
                 f"delta {fmt(ledger.get('delta'), 8)}"])
    return ("Privacy ledger", ["mechanism", "purpose", "parameters"], rows)


def card_table(card: dict | str | None) -> Table | None:
    if not card:
        return None
    if isinstance(card, str):
        return ("Privacy card", ["card"], [[card]])
    return ("Privacy card", ["item", "value"], [[str(k), fmt(v, 6)] for k, v in card.items()])


def utility_tables(results: dict) -> list[Table]:
    u = results.get("utility", {})
    out = []
    cls = u.get("classification")
    if cls:
        rows = []
        for key in cls["tstr"]:
            for side in ("trtr", "tstr"):
                s = cls[side][key]
                rows.append([key if key != "selected" else f"selected ({s['family']})", side.upper(),
                             fmt(s["params"]), fmt(s["cv_auroc"]), fmt(s["auroc"]), fmt(s["auprc"]),
                             fmt(s["accuracy"]), fmt(s["balanced_accuracy"])])
        out.append((f"Utility: predict '{cls['target']}' on the real test split ({cls['n_test']} rows)",
                    ["model", "trained on", "CV-chosen params", "CV AUROC (train side)", "AUROC", "AUPRC",
                     "accuracy", "balanced acc."], rows))
    surv = u.get("survival")
    if surv:
        cox, km = surv["cox"], surv["kaplan_meier"]
        rows = [["Cox C-index, TRTR", fmt(cox["trtr"]["c_index"])], ["Cox C-index, TSTR", fmt(cox["tstr"]["c_index"])],
                ["C-index ratio", fmt(cox["c_index_ratio"])], ["KM sup |difference|", fmt(km["sup"])],
                ["KM integrated |difference|", fmt(km["integrated"])],
                ["same, two real splits (scale)", f"{fmt(km['real_vs_real']['sup'])} / "
                                                 f"{fmt(km['real_vs_real']['integrated'])}"]]
        out.append(("Survival", ["quantity", "value"], rows))
    return out


def fidelity_tables(results: dict) -> list[Table]:
    f = results.get("fidelity")
    if not f or "error" in f:
        return []
    cs = f["column_shapes"]
    summary = [["mean column distance (TVD/KS)", fmt(cs["value"])], ["mean TVD (categorical)", fmt(cs["mean_tvd"])],
               ["mean KS (numeric)", fmt(cs["mean_ks"])],
               ["mean Wasserstein / public range", fmt(cs["mean_wasserstein"])],
               ["mean association difference", fmt(f["association"]["value"])],
               ["max association difference", fmt(f["association"]["max_difference"])],
               ["detection AUROC (0.5 ideal)", fmt(f["detection"]["auroc"])],
               ["PRDC precision / recall", f"{fmt(f['prdc']['precision'])} / {fmt(f['prdc']['recall'])}"],
               ["PRDC density / coverage", f"{fmt(f['prdc']['density'])} / {fmt(f['prdc']['coverage'])}"],
               ["alpha-precision / beta-recall", f"{fmt(f['alpha_beta_authenticity']['alpha_precision'])} / "
                                                 f"{fmt(f['alpha_beta_authenticity']['beta_recall'])}"],
               ["authenticity", fmt(f["alpha_beta_authenticity"]["authenticity"])]]
    cols = [[name, c["kind"], fmt(c.get("tvd")), fmt(c.get("ks")), fmt(c.get("wasserstein"))]
            for name, c in sorted(cs["columns"].items(), key=lambda kv: -kv[1]["distance"])]
    pairs = [[" x ".join(p["pair"]), fmt(p["real"]), fmt(p["synthetic"]), fmt(p["difference"])]
             for p in f["association"]["top_pairs"]]
    return [("Fidelity", ["quantity", "value"], summary),
            ("Columns, most different first", ["column", "kind", "TVD", "KS", "Wasserstein/range"], cols),
            ("Most changed associations", ["pair", "real", "synthetic", "|difference|"], pairs)]


def privacy_tables(results: dict) -> list[Table]:
    p = results.get("privacy")
    if not p or "error" in p:
        return []
    rows = []
    for name, a in p["attacks"].items():
        o, e = a["outliers"], a["epsilon"]
        rows.append([name, fmt(a["auroc"]), fmt(a["tpr_at_fpr_0.01"]), fmt(a["tpr_at_fpr_0.001"]),
                     f"{fmt(o['auroc'])} (k={o['k']})", fmt(o["tpr_at_fpr_0.01"]), fmt(e.get("epsilon_lower_bound"))])
    s = p["summary"]
    rows.append(["max (ensemble)", fmt(s["max_auroc"]), fmt(s["max_tpr_at_fpr_0.01"]), fmt(s["max_tpr_at_fpr_0.001"]),
                 fmt(s["max_outlier_auroc"]), "", fmt(s["epsilon_lower_bound"])])
    c = p["candidates"]
    return [(f"Membership attacks ({c['members']} members vs {c['non_members']} non-members; shadow: {p['shadow']})",
             ["attack", "AUROC", "TPR@FPR 1%", "TPR@FPR 0.1%", "outliers AUROC", "outliers TPR@1%", "eps lower bound"],
             rows)]


def subgroup_tables(results: dict) -> list[Table]:
    g = results.get("subgroups")
    if not g or not g.get("groups"):
        return []
    rows = []
    for x in g["groups"]:
        rows.append([x["group"], str(x["n_real"]), str(x["n_synthetic"]), fmt(x["representation_ratio"], 2),
                     x["flag"] or _small_status(x), fmt(x["fidelity_tvd"]),
                     fmt(x.get("trtr_auroc")), fmt(x.get("tstr_auroc"))])
    out = [("Subgroups (real = training rows; AUROC on real test rows)",
            ["group", "n real", "n synthetic", "repr. ratio", "status", "within-group TVD", "TRTR AUROC",
             "TSTR AUROC"], rows)]
    gap = g.get("utility_gap")
    if gap:
        sm = [[side.upper(), fmt(gap[side]["best"]), fmt(gap[side]["worst"]), fmt(gap[side]["gap"]),
               fmt(gap[side]["worst_group"])] for side in ("trtr", "tstr")]
        out.append(("Best-worst group AUROC", ["model trained on", "best", "worst", "gap", "worst group"], sm))
    fair = g.get("fairness")
    if fair:
        fr = []
        for attr, v in fair.items():
            if v.get("status") != "ok":
                fr.append([attr, "too small", "", "", ""])
                continue
            fr.append([attr, fmt(v["trtr"]["demographic_parity_difference"]),
                       fmt(v["tstr"]["demographic_parity_difference"]), fmt(v["trtr"]["equalized_odds_difference"]),
                       fmt(v["tstr"]["equalized_odds_difference"])])
        out.append(("Fairness of the downstream model (threshold 0.5)",
                    ["attribute", "DP diff (real model)", "DP diff (synthetic model)", "EO diff (real model)",
                     "EO diff (synthetic model)"], fr))
    return out


def _small_status(group: dict) -> str:
    """'ok', 'too small', or a flag when the synthetic data puts rows where the real split has none."""
    if group["status"] == "ok":
        return "ok"
    if group["n_real"] == 0 and group["n_synthetic"] > 0:
        return f"FLAG: {group['n_synthetic']} synthetic rows, 0 real rows"
    return "too small"


def error_table(results: dict) -> Table | None:
    rows = [[area, results[area]["error"]] for area in ("utility", "fidelity", "privacy", "subgroups")
            if isinstance(results.get(area), dict) and "error" in results[area]]
    return ("Areas that could not be evaluated", ["area", "reason"], rows) if rows else None


def all_tables(results: dict, *, ledger: dict | None = None, card=None) -> list[Table]:
    tables: list[Table | None] = [verdict_table(results), error_table(results), epsilon_table(results, ledger),
                                  ledger_table(ledger), card_table(card)]
    tables += utility_tables(results) + fidelity_tables(results) + privacy_tables(results) + subgroup_tables(results)
    return [t for t in tables if t is not None]
