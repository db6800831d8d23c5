"""Report figures drawn from the results dict alone, returned as PNG bytes.

matplotlib is imported and switched to the Agg backend inside :func:`_pyplot`, so importing
this module has no side effect.
"""

from __future__ import annotations

import io

import numpy as np

REAL, SYNTH = "#1f77b4", "#ff7f0e"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def marginal_overlays(results: dict) -> bytes | None:
    hists = results.get("fidelity", {}).get("column_shapes", {}).get("histograms") or []
    if not hists:
        return None
    from dpsynth.reports.readable import axis_label

    descriptions = results.get("meta", {}).get("column_descriptions")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(hists), figsize=(4.2 * len(hists), 3.4), squeeze=False)
    for ax, h in zip(axes[0], hists):
        x = np.arange(len(h["labels"]))
        ax.bar(x - 0.2, h["real"], width=0.4, color=REAL, label="real")
        ax.bar(x + 0.2, h["synthetic"], width=0.4, color=SYNTH, label="synthetic")
        step = max(1, len(x) // 8)
        ax.set_xticks(x[::step], [h["labels"][i] for i in range(0, len(x), step)], rotation=45, fontsize=7)
        ax.set_title(h["column"], fontsize=10)
        label = axis_label(h["column"], descriptions)
        ax.set_xlabel(label if len(label) <= 45 else label[:42] + "...", fontsize=8)
        ax.set_ylabel("share of rows")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Marginals of the most different columns", fontsize=11, y=1.06)
    return _png(fig)


def association_heatmap(results: dict) -> bytes | None:
    assoc = results.get("fidelity", {}).get("association")
    if not assoc:
        return None
    plt = _pyplot()
    m = np.asarray(assoc["difference_matrix"], dtype=float)
    names = assoc["columns"]
    size = max(4.0, 0.28 * len(names) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(m, cmap="Reds", vmin=0, vmax=max(0.2, float(np.nanmax(m))))
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046, label="|association real - synthetic|")
    ax.set_title("Association difference (Pearson / Cramér's V / eta)", fontsize=10)
    return _png(fig)


def attack_rocs(results: dict) -> bytes | None:
    attacks = results.get("privacy", {}).get("attacks") or {}
    curves = {n: a["roc"] for n, a in attacks.items() if a.get("roc")}
    if not curves:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for name, roc in curves.items():
        label = f"{name} (AUROC {attacks[name]['auroc']:.3f})"
        axes[0].plot(roc["fpr"], roc["tpr"], label=label)
        axes[1].plot(np.maximum(roc["fpr"], 1e-3), np.maximum(roc["tpr"], 1e-3), label=label)
    for ax in axes:
        ax.plot([1e-3, 1], [1e-3, 1], "k--", lw=0.8, label="chance")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_title("log-log (low FPR)", fontsize=10)
    axes[0].set_title("Membership attack ROC", fontsize=10)
    axes[0].legend(fontsize=8)
    return _png(fig)


def group_bars(results: dict) -> bytes | None:
    sub = results.get("subgroups") or {}
    groups = [g for g in sub.get("groups", []) if g["status"] == "ok"]
    if not groups:
        return None
    plt = _pyplot()
    names = [g["group"] for g in groups]
    has_auc = any(g.get("tstr_auroc") is not None for g in groups)
    fig, axes = plt.subplots(1, 2 if has_auc else 1, figsize=(12 if has_auc else 6.5, 0.3 * len(names) + 1.6),
                             squeeze=False)
    y = np.arange(len(names))
    ratio = [g["representation_ratio"] or 0.0 for g in groups]
    colors = ["#d62728" if g["flag"] else "#2ca02c" for g in groups]
    ax = axes[0][0]
    ax.barh(y, ratio, color=colors)
    lo, hi = sub["config"]["band"]
    for v in (lo, 1.0, hi):
        ax.axvline(v, color="k", lw=0.8, ls="--" if v != 1.0 else "-")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("representation ratio (synthetic share / real share)")
    ax.set_title("Representation (red: flagged)", fontsize=10)
    if has_auc:
        ax = axes[0][1]
        trtr = [g.get("trtr_auroc") or np.nan for g in groups]
        tstr = [g.get("tstr_auroc") or np.nan for g in groups]
        ax.barh(y - 0.2, trtr, height=0.4, color=REAL, label="trained on real")
        ax.barh(y + 0.2, tstr, height=0.4, color=SYNTH, label="trained on synthetic")
        ax.set_yticks(y, [""] * len(y))
        ax.invert_yaxis()
        ax.set_xlim(0.3, 1.0)
        ax.axvline(0.5, color="k", lw=0.8, ls=":")
        ax.set_xlabel("AUROC on the group's real test rows (blank: too small)")
        ax.set_title("Per-group downstream AUROC", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def km_curves(results: dict) -> bytes | None:
    km = results.get("utility", {}).get("survival", {}).get("kaplan_meier")
    if not km:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.step(km["grid"], km["real"], where="post", color=REAL, label="real (train)")
    ax.step(km["grid"], km["synthetic"], where="post", color=SYNTH, label="synthetic")
    ax.set_ylim(0, 1.02)
    from dpsynth.reports.readable import axis_label

    meta = results.get("meta", {})
    duration = meta.get("duration")
    ax.set_xlabel(axis_label(duration, meta.get("column_descriptions")) if duration else "time")
    ax.set_ylabel("share without event (survival)")
    ax.set_title(f"Kaplan-Meier (sup |diff| {km['sup']:.3f})", fontsize=10)
    ax.legend(fontsize=8)
    return _png(fig)


def all_plots(results: dict) -> dict[str, bytes]:
    """{caption: PNG bytes} for every figure the results allow."""
    makers = {"Marginal overlays": marginal_overlays, "Association difference": association_heatmap,
              "Membership attack ROC curves": attack_rocs, "Subgroups": group_bars, "Kaplan-Meier": km_curves}
    out = {}
    for caption, make in makers.items():
        png = make(results)
        if png:
            out[caption] = png
    return out
