"""One-screen terminal summary with traffic lights (thresholds: dpsynth.metrics.thresholds)."""

from __future__ import annotations

from dpsynth.reports.tables import fmt

_ANSI = {"green": "\033[32m", "amber": "\033[33m", "red": "\033[31m", "n/a": "\033[90m"}
_RESET = "\033[0m"
_SYMBOL = {"green": "[GREEN]", "amber": "[AMBER]", "red": "[ RED ]", "n/a": "[ n/a ]"}


def _light(verdict: str, color: bool) -> str:
    text = _SYMBOL.get(verdict, verdict)
    return f"{_ANSI[verdict]}{text}{_RESET}" if color and verdict in _ANSI else text


def format_terminal_summary(results: dict, *, color: bool = False, width: int = 88) -> str:
    """Verdict per area, the checks behind it, and the claimed vs empirical epsilon."""
    import textwrap

    from dpsynth.reports.verdict import release_verdict

    meta = results.get("meta", {})
    lines = textwrap.wrap(release_verdict(results, None)[1], width=width)
    lines += [f"dpsynth evaluation: {meta.get('schema', '?')}  (train {meta.get('n_train')}, holdout "
             f"{meta.get('n_holdout')}, test {meta.get('n_test')}, synthetic {meta.get('n_synthetic')})",
             "-" * width]
    lines.extend(utility_lines(results.get("utility") or {}))
    for area, block in results.get("verdicts", {}).items():
        lines.append(f"{_light(block['verdict'], color)} {area.upper()}")
        for c in block["checks"]:
            if c["check"] == "error":
                lines.append(f"    {_light('red', color)} {c['label'][: width - 12]}")
                continue
            if c["value"] is None:
                continue
            op = ">=" if c["direction"] == "higher" else "<="
            lines.append(f"    {_light(c['verdict'], color)} {c['label'][:48]:<48} {fmt(c['value']):>8}"
                         f"   (green {op} {fmt(c['green'], 2)}, amber {op} {fmt(c['amber'], 2)})")
    s = results.get("privacy", {}).get("summary")
    if s:
        claimed = s.get("claimed_epsilon")
        lines.append("-" * width)
        conf = int(round(100 * s["epsilon_confidence"]))
        lines.append(f"epsilon: claimed {fmt(claimed) if claimed is not None else 'n/a (not given)'}   "
                     f"empirical lower bound {fmt(s.get('epsilon_lower_bound'))} "
                     f"({s.get('epsilon_lower_bound_attack') or '-'}, {conf}% conf.)")
        lines.append(f"strongest attack: AUROC {fmt(s.get('max_auroc'))} ({s.get('max_auroc_attack')}), "
                     f"TPR@FPR1% {fmt(s.get('max_tpr_at_fpr_0.01'))}, "
                     f"on outliers AUROC {fmt(s.get('max_outlier_auroc'))}")
    g = results.get("subgroups")
    if g and g.get("flagged"):
        names = ", ".join(f"{f['group']} ({f['flag']}, {fmt(f['representation_ratio'], 2)})" for f in g["flagged"][:4])
        more = f" +{len(g['flagged']) - 4} more" if len(g["flagged"]) > 4 else ""
        lines.append(f"flagged groups: {names}{more}")
    return "\n".join(lines)


def utility_lines(utility: dict) -> list[str]:
    """The scores behind the TSTR/TRTR ratio, side by side: every score the target kind has
    (AUROC, AUPRC, balanced accuracy, ... for a classification target; Cox C-index for survival)."""
    lines = []
    cls = utility.get("classification") or {}
    if "tstr" in cls and "trtr" in cls:
        tstr, trtr = cls["tstr"].get("selected", {}), cls["trtr"].get("selected", {})
        keys = [k for k, v in trtr.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                and k not in ("cv_auroc",) and isinstance(tstr.get(k), (int, float))]
        scores = ", ".join(f"{k} {fmt(tstr[k])} vs {fmt(trtr[k])}" for k in keys)
        lines.append(f"utility, target '{cls.get('target')}' on the real test split (TSTR vs TRTR): {scores}")
        lines.append(f"    models: TSTR {tstr.get('family')}, TRTR {trtr.get('family')} (chosen by CV on each training side)")
    cox = (utility.get("survival") or {}).get("cox") or {}
    if cox.get("tstr") and cox.get("trtr"):
        lines.append(f"survival: Cox C-index TSTR {fmt(cox['tstr'].get('c_index'))} vs TRTR {fmt(cox['trtr'].get('c_index'))}")
    return lines
