"""The one-sentence release verdict of an internal evaluation (used by the report and the terminal)."""

from __future__ import annotations

import math

from dpsynth.reports.readable import verdict_sentence
from dpsynth.reports.tables import fmt


def release_verdict(results: dict, ledger: dict | None) -> tuple[bool, str]:
    """'Fit for release at epsilon=E: yes/no, because ...': no when the run is non-private or any
    check is red; the reasons name the red checks (or the amber ones when it is a yes)."""
    eps = (ledger or {}).get("epsilon")
    if eps is None:
        eps = results.get("privacy", {}).get("summary", {}).get("claimed_epsilon")
    reasons_red, reasons_amber = [], []
    for area, block in results.get("verdicts", {}).items():
        for c in block["checks"]:
            text = f"{area}: {c['label']} = {fmt(c['value'])}" if c.get("value") is not None else f"{area}: {c['label']}"
            if c["verdict"] == "red":
                reasons_red.append(text + (" (red)" if c.get("value") is not None else ""))
            elif c["verdict"] == "amber":
                reasons_amber.append(text + " (amber)")
    if eps is None:
        return False, verdict_sentence(fit=False, epsilon=None, reasons=["no privacy ledger was given (no DP claim)"])
    if eps == "inf" or (isinstance(eps, float) and math.isinf(eps)):
        return False, verdict_sentence(fit=False, epsilon=eps, reasons=["this is a NON-PRIVATE reference run"])
    if reasons_red:
        return False, verdict_sentence(fit=False, epsilon=eps, reasons=reasons_red[:4]
                                       + ([f"{len(reasons_red) - 4} more red checks"] if len(reasons_red) > 4 else []))
    because = ["no check is red"] + ([f"watch: {'; '.join(reasons_amber[:3])}"] if reasons_amber else [])
    return True, verdict_sentence(fit=True, epsilon=eps, reasons=because)
