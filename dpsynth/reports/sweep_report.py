"""The sweep report: sweep.json, sweep.md and a self-contained sweep.html.

Built from the cells' records alone (each cell's ``cell.json``): the table behind the plots
(mean and std over seeds per generator, release and epsilon), the plots (privacy-utility,
privacy-fairness, attack AUROC and audit lower bound vs epsilon, one line per generator with
error bars over seeds), and each run's privacy card (accountant, delta, clip norm, noise
multiplier, sampling rate, steps, preprocessing spend).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dpsynth.metrics.base import _plain
from dpsynth.reports.report import render_html
from dpsynth.reports.tables import fmt

METRICS = {  # key: (label, where in the evaluation results)
    "tstr_auroc": ("TSTR AUROC", ("utility", "classification", "tstr", "selected", "auroc")),
    "trtr_auroc": ("TRTR AUROC", ("utility", "classification", "trtr", "selected", "auroc")),
    "worst_group_tstr_gap": ("worst-group TSTR AUROC gap", ("subgroups", "utility_gap", "tstr", "gap")),
    "worst_group_trtr_gap": ("worst-group TRTR AUROC gap", ("subgroups", "utility_gap", "trtr", "gap")),
    "worst_group_tstr_auroc": ("worst-group TSTR AUROC", ("subgroups", "utility_gap", "tstr", "worst")),
    "min_representation_ratio": ("min representation ratio", ("subgroups", "min_representation_ratio")),
    "max_representation_ratio": ("max representation ratio", ("subgroups", "max_representation_ratio")),
    "attack_auroc": ("max attack AUROC", ("privacy", "summary", "max_auroc")),
    "attack_epsilon_lower_bound": ("attack epsilon lower bound", ("privacy", "summary", "epsilon_lower_bound")),
}


def _dig(d, path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d if isinstance(d, (int, float)) and not isinstance(d, bool) else None


def headline_metrics(results: dict) -> dict:
    """The numbers a sweep plots, from one evaluation's results (None where not computed)."""
    return {key: _dig(results, path) for key, (_, path) in METRICS.items()}


def cell_privacy_card(ledger) -> dict:
    """What reproduces a run's DP claim, in one flat record."""
    eps = ledger.epsilon()
    sgd = [e for e in ledger.entries if e.mechanism == "dp-sgd"]
    card = {"epsilon": "inf" if math.isinf(eps) else eps, "target_epsilon": ledger.target_epsilon,
            "delta": ledger.delta, "accountant": ledger.accountant, "non_private": ledger.non_private,
            "preprocessing_epsilon": "inf" if ledger.non_private else ledger.preprocessing_epsilon(),
            "preprocessing": [e.purpose for e in ledger.entries if e.mechanism in ("gaussian", "zcdp")],
            "dp_sgd": [{"purpose": e.purpose, "noise_multiplier": e.noise_multiplier, "sample_rate": e.sample_rate,
                        "steps": e.steps, "clip_norm": e.params.get("max_grad_norm"),
                        "clipping": e.params.get("clipping", "flat"),
                        "balanced_sampling": bool(e.params.get("balanced_sampling", False))} for e in sgd]}
    return card


# ---- aggregation ----------------------------------------------------------------------------------
def _eps_value(text: str) -> float:
    return math.inf if text == "inf" else float(text)


def aggregate(records: list[dict]) -> list[dict]:
    """One row per (generator label, release, epsilon): mean, std and count over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("status") != "ok":
            continue
        for release, key in (("model", "metrics"), ("balanced", "balanced_metrics")):
            if key in r:
                metrics = dict(r[key])
                if release == "model" and r.get("audit"):
                    metrics["audit_epsilon_lower_bound"] = r["audit"]["epsilon_lower_bound"]
                groups.setdefault((r["label"], release, r["epsilon"]), []).append(metrics)
    rows = []
    for (label, release, eps), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                _eps_value(kv[0][2]))):
        row = {"label": label, "release": release, "epsilon": eps, "seeds": len(items)}
        for key in sorted({k for m in items for k in m}):
            values = [m[key] for m in items if m.get(key) is not None]
            row[key] = float(np.mean(values)) if values else None
            row[f"{key}_std"] = float(np.std(values)) if len(values) > 1 else (0.0 if values else None)
        rows.append(row)
    return rows


# ---- plots ----------------------------------------------------------------------------------------
def _x_positions(rows: list[dict]) -> tuple[dict, list, list]:
    finite = sorted({_eps_value(r["epsilon"]) for r in rows} - {math.inf})
    top = max(finite) if finite else 1.0
    where = {f"{e:g}": e for e in finite}
    if any(r["epsilon"] == "inf" for r in rows):
        where["inf"] = top * 4
    ticks = sorted(where.values())
    labels = ["inf\n(non-private)" if t == where.get("inf") else f"{t:g}" for t in ticks]
    return where, ticks, labels


def _series(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        name = r["label"] if r["release"] == "model" else f"{r['label']} (balanced release)"
        out.setdefault(name, []).append(r)
    return out


def _colors(rows: list[dict]) -> dict[str, str]:
    """One colour per series, the same in every figure."""
    palette = [f"C{i}" for i in range(10)]
    return {name: palette[i % len(palette)] for i, name in enumerate(_series(rows))}


def _lines(ax, rows, key, where, *, colors, style="-o", suffix=""):
    for name, items in _series(rows).items():
        pts = [(where[r["epsilon"]], r[key], r.get(f"{key}_std") or 0.0) for r in items if r.get(key) is not None]
        if not pts:
            continue
        pts.sort()
        x, y, e = map(np.asarray, zip(*pts))
        ax.errorbar(x, y, yerr=e, fmt=style, capsize=3, ms=4, color=colors.get(name), label=f"{name}{suffix}")


def _axes(ax, ticks, labels, ylabel):
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("epsilon")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def sweep_plots(rows: list[dict]) -> dict[str, bytes]:
    from dpsynth.reports.plots import _png, _pyplot

    if not rows:
        return {}
    plt = _pyplot()
    where, ticks, labels = _x_positions(rows)
    colors = _colors(rows)
    figures = {}

    fig, ax = plt.subplots(figsize=(6.5, 4))
    _lines(ax, rows, "tstr_auroc", where, colors=colors)
    trtr = [r["trtr_auroc"] for r in rows if r.get("trtr_auroc") is not None]
    if trtr:
        ax.axhline(float(np.mean(trtr)), color="k", ls="--", lw=1, label=f"TRTR (real data) {np.mean(trtr):.3f}")
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    _axes(ax, ticks, labels, "TSTR AUROC (real test split)")
    ax.set_title("Privacy-utility", fontsize=10)
    ax.legend(fontsize=7)
    figures["Privacy-utility: TSTR AUROC vs epsilon (TRTR dashed)"] = _png(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    _lines(axes[0], rows, "worst_group_tstr_gap", where, colors=colors)
    gap = [r["worst_group_trtr_gap"] for r in rows if r.get("worst_group_trtr_gap") is not None]
    if gap:
        axes[0].axhline(float(np.mean(gap)), color="k", ls="--", lw=1, label=f"TRTR gap {np.mean(gap):.3f}")
    _axes(axes[0], ticks, labels, "best - worst group TSTR AUROC")
    axes[0].set_title("Worst-group utility gap", fontsize=10)
    axes[0].legend(fontsize=7)
    _lines(axes[1], rows, "min_representation_ratio", where, colors=colors, suffix=" min")
    _lines(axes[1], rows, "max_representation_ratio", where, colors=colors, style="--s", suffix=" max")
    axes[1].set_yscale("log")
    axes[1].axhline(1.0, color="k", lw=1)
    _axes(axes[1], ticks, labels, "representation ratio (synthetic / real share)")
    axes[1].set_title("Min / max representation ratio over subgroups", fontsize=10)
    axes[1].legend(fontsize=7)
    figures["Privacy-fairness: worst-group TSTR gap and representation ratios vs epsilon"] = _png(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4))
    _lines(ax, rows, "attack_auroc", where, colors=colors)
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    _axes(ax, ticks, labels, "max membership-attack AUROC")
    ax.set_title("Attack AUROC", fontsize=10)
    ax.legend(fontsize=7)
    figures["Membership attack AUROC vs epsilon"] = _png(fig)

    if any(r.get("audit_epsilon_lower_bound") is not None for r in rows):
        fig, ax = plt.subplots(figsize=(6.5, 4))
        _lines(ax, [r for r in rows if r["release"] == "model"], "audit_epsilon_lower_bound", where, colors=colors)
        finite = [t for t in ticks if t != where.get("inf")]
        ax.plot(finite, finite, "k--", lw=1, label="claimed epsilon")
        _axes(ax, ticks, labels, "empirical epsilon lower bound (95%)")
        ax.set_yscale("symlog", linthresh=0.5)
        ax.set_title("Privacy audit (one run, Steinke et al. 2023)", fontsize=10)
        ax.legend(fontsize=7)
        figures["Privacy audit: empirical lower bound vs claimed epsilon"] = _png(fig)
    return figures


# ---- tables and files -----------------------------------------------------------------------------
_TABLE_KEYS = ["tstr_auroc", "trtr_auroc", "worst_group_tstr_gap", "min_representation_ratio",
               "max_representation_ratio", "attack_auroc", "audit_epsilon_lower_bound"]


def summary_table(rows: list[dict]) -> tuple[str, list[str], list[list[str]]]:
    headers = ["generator", "release", "epsilon", "seeds"] + [
        METRICS[k][0] if k in METRICS else "audit epsilon lower bound" for k in _TABLE_KEYS]

    def cell(r, k):
        if r.get(k) is None:
            return "-"
        std = r.get(f"{k}_std")
        return f"{r[k]:.3f}" + (f" ± {std:.3f}" if r["seeds"] > 1 and std is not None else "")

    return ("Results (mean ± std over seeds)", headers,
            [[r["label"], r["release"], r["epsilon"], str(r["seeds"])] + [cell(r, k) for k in _TABLE_KEYS]
             for r in rows])


def cells_table(records: list[dict]) -> tuple[str, list[str], list[list[str]]]:
    headers = ["generator", "epsilon", "seed", "status", "spent epsilon", "delta", "accountant", "clip norm",
               "noise multiplier", "sampling rate", "steps", "clipping", "preprocessing epsilon", "note"]
    rows = []
    for r in records:
        card = r.get("privacy_card") or {}
        sgd = (card.get("dp_sgd") or [{}])[0]
        rows.append([r["label"], r["epsilon"], str(r["seed"]), r["status"], fmt(card.get("epsilon"), 4),
                     (f"{card['delta']:.3g}" if card.get("delta") is not None else "-"), fmt(card.get("accountant")), fmt(sgd.get("clip_norm")),
                     fmt(sgd.get("noise_multiplier"), 4), fmt(sgd.get("sample_rate"), 5), fmt(sgd.get("steps")),
                     fmt(sgd.get("clipping")) + (" + balanced sampling" if sgd.get("balanced_sampling") else ""),
                     fmt(card.get("preprocessing_epsilon"), 4), r.get("message") or r.get("balanced_error") or ""])
    return ("Privacy card of every run", headers, rows)


def write_sweep_report(out_dir: str | Path, *, config: dict, records: list[dict], plots: bool = True) -> dict:
    out = Path(out_dir)
    rows = aggregate(records)
    payload = _plain({"config": config, "summary": rows, "cells": records})
    paths = {"json": out / "sweep.json", "md": out / "sweep.md", "html": out / "sweep.html"}
    paths["json"].write_text(json.dumps(payload, indent=2, default=str))
    tables = [summary_table(rows), cells_table(records)]
    title = f"dpsynth sweep: {config.get('description') or config.get('data')}"
    text = _summary_text(config, records)
    md = [f"# {title}", "", "```", text, "```", ""]
    for name, headers, body in tables:
        md += [f"## {name}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        md += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in body]
        md.append("")
    md += ["Plots: see sweep.html. Every run's full report is under cells/LABEL/eps=E/seed=S/report/.", ""]
    paths["md"].write_text("\n".join(md))
    figures = sweep_plots(rows) if plots else {}
    paths["html"].write_text(render_html(title, tables, text, figures))
    return paths


def _summary_text(config: dict, records: list[dict]) -> str:
    status = {s: sum(r["status"] == s for r in records) for s in ("ok", "skipped", "failed")}
    lines = [f"data: {config.get('data')}   epsilons: {', '.join(config.get('epsilons', []))}   "
             f"seeds: {config.get('seeds')}",
             f"cells: {len(records)}  ok {status['ok']}  skipped {status['skipped']}  failed {status['failed']}",
             "epsilon=inf is the explicitly named NON-PRIVATE reference (never release its output)."]
    if config.get("rebalance"):
        lines.append(f"balanced release: equal counts per cell of {', '.join(config['rebalance'])} (post-processing)")
    for r in records:
        if r["status"] != "ok":
            lines.append(f"{r['status']}: {r['label']} eps={r['epsilon']} seed={r['seed']}: {r.get('message', '')}")
    return "\n".join(lines)
