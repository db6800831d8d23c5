"""The image evaluation report (internal): report.json, report.md and a self-contained
report.html.

Read top to bottom: the internal-evaluation notice, the release verdict line, verdict cards
(utility, fidelity, privacy, subgroups), the privacy claim and the ledger per mechanism, the
metric table with the majority-class baseline and balanced accuracy beside every accuracy, the
subgroups, class-labelled image grids (synthetic; real images only when asked for), and the raw
ledger in a collapsed appendix."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from dpsynth.metrics.base import _plain
from dpsynth.reports.readable import (CSS, LEDGER_HEADERS, class_grid_html, class_strips, html_table,
                                      ledger_appendix_html, ledger_summary_rows, light, md_table,
                                      privacy_claim_rows, verdict_html, verdict_sentence)

ATTACK_GREEN, ATTACK_AMBER = 0.55, 0.60  # the table report's thresholds for the strongest attack AUROC


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _util(results: dict) -> dict:
    return results["metrics"].get("image_downstream_accuracy", {}).get("breakdown", {})


def _score(util: dict, side: str, key: str) -> str:
    std = util.get(f"{side}_{key}_std")
    value = util.get(f"{side}_{key}")
    return _f(value) + (f" +/- {std:.3f}" if std is not None else "")


def _rows(results: dict) -> list[tuple[str, str, str]]:
    util = _util(results)
    rows = []
    if util:
        base = f"majority-class baseline {_f(util.get('majority_accuracy'))}"
        bbase = f"majority-class baseline {_f(util.get('majority_balanced_accuracy'))}"
        rows += [("accuracy, CNN trained on synthetic (real test images)", _score(util, "synthetic", "accuracy"), base),
                 ("accuracy, CNN trained on real (real test images)", _score(util, "real", "accuracy"), base),
                 ("balanced accuracy, CNN trained on synthetic", _f(util.get("synthetic_balanced_accuracy")), bbase),
                 ("balanced accuracy, CNN trained on real", _f(util.get("real_balanced_accuracy")), bbase),
                 ("AUROC, CNN trained on synthetic", _score(util, "synthetic", "auroc"), "chance 0.500"),
                 ("AUROC, CNN trained on real", _score(util, "real", "auroc"), "chance 0.500"),
                 ("accuracy ratio synthetic / real", _f(util.get("accuracy_ratio")), "1.000 ideal")]
        rows += _honest_rows(util.get("honest"))
    for name, m in results["metrics"].items():
        if name == "image_downstream_accuracy":
            continue
        value = m["value"]
        label, against = _LABELS.get(name, (name, m["goal"] + (f" {m['target']}" if m.get("target") is not None else "")))
        if name == "image_class_counts":
            text = f"{int(value)} (smallest class)"
        else:
            text = _f(value, 3) if isinstance(value, float) else str(value)
        rows.append((label, text, against))
    return rows


def _honest_rows(honest: dict | None) -> list[tuple[str, str, str]]:
    """Per-class recall of both CNNs, ordinal kappa, and the majority-class verdict (image_verdict.py)."""
    if not honest:
        return []
    recall = lambda side: ", ".join(f"{c}: {v:.2f}" for c, v in honest[side]["per_class_recall"].items())  # noqa: E731
    rows = [("per-class recall, CNN trained on synthetic", recall("synthetic"), "majority class: 1 for one class, 0 else"),
            ("per-class recall, CNN trained on real", recall("real"), ""),
            ("balanced accuracy ratio synthetic / real", _f(honest.get("balanced_accuracy_ratio")), "1.000 ideal")]
    if honest.get("ordinal"):
        rows.append(("quadratic-weighted kappa (ordinal grades), synthetic / real",
                     f"{_f(honest['synthetic'].get('quadratic_weighted_kappa'))} / "
                     f"{_f(honest['real'].get('quadratic_weighted_kappa'))}", "0 = chance, 1 ideal"))
    rows.append(("utility verdict vs the majority class", honest["verdict"], "; ".join(honest["reasons"]) or "better"))
    return rows


_LABELS = {
    "image_domain_fid": ("domain FID (features of the real-trained CNN), synthetic vs real test", "lower is better; 0 ideal"),
    "image_inception_fid": ("Inception FID, synthetic vs real test", "lower is better; 0 ideal"),
    "image_prdc_coverage": ("PRDC coverage of the real test images", "higher is better; 1 ideal"),
    "image_class_counts": ("synthetic images per class", "every class sampled"),
    "image_dcr_attack_auroc": ("membership attack AUROC, distance to closest synthetic image", "0.5 = guessing"),
    "image_domias_attack_auroc": ("membership attack AUROC, DOMIAS density ratio", "0.5 = guessing"),
    "image_worst_group_accuracy_gap": ("largest subgroup accuracy gap, real- minus synthetic-trained CNN",
                                       "lower is better"),
}


def _subgroup_rows(results: dict) -> list[tuple[str, ...]]:
    """(group, n test, majority baseline, real acc, synthetic acc, gap) per subgroup of the real test images."""
    rows = []
    for g in _util(results).get("subgroups") or []:
        if g["status"] != "ok":
            rows.append((g["group"], str(g["n_test"]), "-", "-", "-", g["status"]))
            continue
        rows.append((g["group"], str(g["n_test"]), _f(g.get("majority_accuracy")), f"{g['real_accuracy']:.3f}",
                     f"{g['synthetic_accuracy']:.3f}", f"{g['accuracy_gap']:.3f}"))
    return rows


_SUBGROUP_HEAD = ("subgroup (real test images)", "n", "majority-class baseline", "accuracy, real-trained CNN",
                  "accuracy, synthetic-trained CNN", "gap")


def _attack(results: dict) -> float | None:
    values = [results["metrics"][k]["value"] for k in ("image_dcr_attack_auroc", "image_domias_attack_auroc")
              if k in results["metrics"] and isinstance(results["metrics"][k]["value"], float)
              and not math.isnan(results["metrics"][k]["value"])]
    return max(values) if values else None


def image_verdict(results: dict) -> tuple[bool, str]:
    ledger = results.get("ledger", {})
    eps = ledger.get("epsilon")
    util = _util(results)
    if eps == "inf" or (isinstance(eps, float) and math.isinf(eps)):
        return False, verdict_sentence(fit=False, epsilon=eps, reasons=["this is a NON-PRIVATE reference run"])
    reasons = []
    attack = _attack(results)
    if attack is not None and attack > ATTACK_AMBER:
        reasons.append(f"a membership attack reaches AUROC {attack:.3f} (> {ATTACK_AMBER})")
    if util and util["synthetic_accuracy"] <= util.get("majority_accuracy", -1):
        reasons.append(f"the synthetic-trained CNN ({util['synthetic_accuracy']:.3f}) is no better than always "
                       f"predicting the majority class ({util['majority_accuracy']:.3f})")
    if util and util.get("synthetic_balanced_accuracy", 1) <= util.get("majority_balanced_accuracy", 0) + 0.02:
        reasons.append(f"its balanced accuracy ({util['synthetic_balanced_accuracy']:.3f}) is at chance "
                       f"({util['majority_balanced_accuracy']:.3f})")
    honest = util.get("honest") if util else None
    if honest and honest["verdict"] == "FAIL" and not reasons:
        reasons += honest["reasons"]
    if reasons:
        return False, verdict_sentence(fit=False, epsilon=eps, reasons=reasons)
    why = []
    if util:
        why.append(f"the synthetic-trained CNN beats the majority-class baseline ({util['synthetic_accuracy']:.3f} vs "
                   f"{util['majority_accuracy']:.3f}; balanced {util['synthetic_balanced_accuracy']:.3f} vs "
                   f"{util['majority_balanced_accuracy']:.3f})")
    if attack is not None:
        why.append(f"the strongest membership attack has AUROC {attack:.3f} (<= {ATTACK_AMBER})")
    return True, verdict_sentence(fit=True, epsilon=eps, reasons=why)


def _cards(results: dict) -> list[tuple[str, str, str, str]]:
    """(area, light, big number, note) per area."""
    util = _util(results)
    out = []
    if util:
        acc, base = util["synthetic_accuracy"], util.get("majority_accuracy", 0.0)
        ratio = util.get("accuracy_ratio") or 0.0
        lit = "RED" if acc <= base else ("GREEN" if ratio >= 0.95 else "AMBER" if ratio >= 0.85 else "RED")
        out.append(("Utility", lit, f"{acc:.3f}", f"synthetic-trained accuracy; real-trained {util['real_accuracy']:.3f}; "
                                                 f"majority baseline {base:.3f}; balanced "
                                                 f"{util.get('synthetic_balanced_accuracy', math.nan):.3f}"))
    m = results["metrics"]
    if "image_prdc_coverage" in m:
        cov = m["image_prdc_coverage"]["value"]
        fid = m.get("image_domain_fid", {}).get("value")
        out.append(("Fidelity", "GREEN" if cov >= 0.8 else "AMBER" if cov >= 0.5 else "RED", f"{cov:.3f}",
                    f"PRDC coverage of the real test images; domain FID {_f(fid, 2)}"))
    attack = _attack(results)
    if attack is not None:
        out.append(("Privacy", "GREEN" if attack <= ATTACK_GREEN else "AMBER" if attack <= ATTACK_AMBER else "RED",
                    f"{attack:.3f}", "strongest membership attack AUROC (0.5 = guessing)"))
    worst = m.get("image_worst_group_accuracy_gap")
    if worst is not None:
        gap = worst["value"]
        out.append(("Subgroups", "GREEN" if gap <= 0.05 else "AMBER" if gap <= 0.10 else "RED", f"{gap:.3f}",
                    f"largest accuracy gap real - synthetic CNN, group {worst['breakdown'].get('group')}"))
    return out


def _cards_html(cards) -> str:
    return "<div class='cards'>" + "".join(
        f"<div class='card'><b>{a}</b>{light(lit)} <span class='big'>{big}</span><div class='sub'>{note}</div></div>"
        for a, lit, big, note in cards) + "</div>"


def write_image_report(out_dir: str | Path, results: dict, *, grids: dict[str, Path], title: str, synthetic=None,
                       real=None, classes=None) -> dict[str, Path]:
    """``grids``: PNG files linked from report.md; ``synthetic`` / ``real`` (ImageData in [-1, 1])
    give the class-labelled rows of report.html (``real`` only when the user asked for real images)."""
    from dpsynth.reports.internal import INTERNAL_NOTICE

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_plain({"notice": INTERNAL_NOTICE, **results}), indent=2))
    ledger = results.get("ledger", {})
    fit, sentence = image_verdict(results)
    claim = privacy_claim_rows(ledger, privacy_unit="image", public="the image schema (size, channels, intensity "
                               "range, class list) and the number of training images",
                               n_train=results.get("meta", {}).get("n_train"))
    ledger_rows = ledger_summary_rows(ledger)
    metric_rows = _rows(results)
    subgroups = _subgroup_rows(results)
    md = [f"**{INTERNAL_NOTICE}.**", "", f"# {title}", "", f"**{sentence}**", "", "## Privacy claim", "",
          *md_table(["item", "value"], claim), "", "## Privacy ledger (per mechanism)", "",
          *md_table(LEDGER_HEADERS, ledger_rows), "", "## Metrics", "",
          *md_table(["metric", "value", "read against"], metric_rows)]
    if subgroups:
        md += ["", "## Subgroups", "", *md_table(_SUBGROUP_HEAD, subgroups)]
    md += ["", *[f"![{k}]({Path(v).name})" for k, v in grids.items()], ""]
    (out / "report.md").write_text("\n".join(md))
    grid_html = ""
    if synthetic is not None and classes is not None:
        grid_html += ("<h2>Synthetic images, one row per class</h2>"
                      + class_grid_html(class_strips(synthetic.images, synthetic.labels, classes), what="synthetic"))
    if real is not None and classes is not None:
        grid_html += ("<h2>Real test images, one row per class (shown because --include-real-images was given)</h2>"
                      + class_grid_html(class_strips(real.images, real.labels, classes), what="real test"))
    elif synthetic is not None:
        grid_html += ("<p class='note'>Real images are not shown (they would make this file a copy of patient images); "
                      "pass --include-real-images to add them.</p>")
    title = html.escape(title)
    page = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>",
            f"<style>{CSS}</style></head><body>", f"<div class='banner internal'>{INTERNAL_NOTICE}.</div>",
            f"<h1>{title}</h1>", verdict_html(sentence, fit), _cards_html(_cards(results)),
            "<div class='cols'><div><h2>Privacy claim</h2>", html_table(["item", "value"], claim, cls="claim"),
            "</div><div><h2>Privacy ledger, per mechanism</h2>", html_table(LEDGER_HEADERS, ledger_rows),
            "</div></div>", "<h2>Metrics (real test split)</h2>",
            html_table(["metric", "value", "read against"], metric_rows)]
    if subgroups:
        page.append("<h2>Subgroups</h2>" + html_table(_SUBGROUP_HEAD, subgroups))
    page += [grid_html, "<h2>Appendix</h2>", ledger_appendix_html(ledger), "</body></html>"]
    (out / "report.html").write_text("\n".join(page))
    return {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}


__all__ = ["write_image_report", "image_verdict"]
