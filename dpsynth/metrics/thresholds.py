"""Traffic-light verdicts: documented, configurable thresholds per area.

Each check reads one number from the results, compares it with a ``green`` and an ``amber``
limit in a stated ``direction`` ("higher" is better or "lower" is better), and gets green,
amber, red, or n/a when the number is missing. An area's verdict is its worst check. The
defaults below are also written out in ``configs/evaluation_thresholds.yaml``; a config's
``verdicts`` mapping overrides them check by check.

Defaults, and why:
- utility: TSTR/TRTR AUROC ratio >= 0.95 green, >= 0.85 amber (a 5% / 15% loss of
  discrimination); the same for the Cox C-index ratio; KM integrated |S_syn - S_real| <= 0.02
  green, <= 0.05 amber (two real splits of ACTG 175 differ by ~0.01-0.02).
- fidelity: |detection AUROC - 0.5| <= 0.10 green, <= 0.25 amber; mean column distance
  (TVD / KS) <= 0.05 green, <= 0.10 amber; mean association difference <= 0.05 / 0.10.
- privacy: strongest attack AUROC <= 0.55 green, <= 0.60 amber; strongest TPR at FPR 1%
  <= 0.03 green, <= 0.10 amber (a blind guess gets 0.01); the empirical epsilon lower bound
  must not exceed the claimed epsilon (ratio <= 1 green, otherwise red: the claim or the code
  is wrong); without a claim, the bound itself <= 0.5 green, <= 2 amber.
- subgroups: flagged groups (representation outside the band) 0 green, <= 2 amber; worst-group
  TSTR/TRTR AUROC ratio >= 0.95 green, >= 0.85 amber; the equalized-odds difference of the
  synthetic-trained model may exceed the real-trained one's by <= 0.05 green, <= 0.10 amber.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dpsynth.errors import ConfigError

ORDER = {"green": 0, "amber": 1, "red": 2}


@dataclass(frozen=True)
class Check:
    area: str
    key: str
    label: str
    direction: str  # "higher" or "lower" is better
    green: float
    amber: float

    def verdict(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        if self.direction == "higher":
            return "green" if value >= self.green else "amber" if value >= self.amber else "red"
        return "green" if value <= self.green else "amber" if value <= self.amber else "red"


DEFAULT_CHECKS: tuple[Check, ...] = (
    Check("utility", "tstr_auroc_ratio", "TSTR/TRTR AUROC (selected model)", "higher", 0.95, 0.85),
    Check("utility", "cox_cindex_ratio", "TSTR/TRTR Cox C-index", "higher", 0.95, 0.85),
    Check("utility", "km_integrated_difference", "Kaplan-Meier integrated |difference|", "lower", 0.02, 0.05),
    Check("fidelity", "detection_auroc_excess", "|detection AUROC - 0.5|", "lower", 0.10, 0.25),
    Check("fidelity", "column_distance", "mean column TVD/KS", "lower", 0.05, 0.10),
    Check("fidelity", "association_difference", "mean association difference", "lower", 0.05, 0.10),
    Check("privacy", "max_attack_auroc", "strongest attack AUROC", "lower", 0.55, 0.60),
    Check("privacy", "max_tpr_at_fpr_0.01", "strongest TPR at FPR 1%", "lower", 0.03, 0.10),
    Check("privacy", "epsilon_lb_over_claimed", "empirical eps lower bound / claimed eps", "lower", 1.0, 1.0),
    Check("privacy", "epsilon_lb_unclaimed", "empirical eps lower bound (no claim)", "lower", 0.5, 2.0),
    Check("subgroups", "flagged_groups", "groups outside the representation band", "lower", 0, 2),
    Check("subgroups", "worst_group_auroc_ratio", "worst-group TSTR/TRTR AUROC", "higher", 0.95, 0.85),
    Check("subgroups", "equalized_odds_increase", "equalized-odds difference, synthetic minus real model",
          "lower", 0.05, 0.10),
)


def checks_from_config(overrides: dict | None) -> tuple[Check, ...]:
    """Defaults, with ``{check_key: {green:, amber:, direction:}}`` overrides applied."""
    overrides = dict(overrides or {})
    known = {c.key for c in DEFAULT_CHECKS}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"verdicts: unknown check(s) {sorted(unknown)}; known: {sorted(known)}")
    out = []
    for c in DEFAULT_CHECKS:
        o = overrides.get(c.key) or {}
        bad = set(o) - {"green", "amber", "direction"}
        if bad:
            raise ConfigError(f"verdicts.{c.key}: unknown key(s) {sorted(bad)} (allowed: green, amber, direction)")
        direction = o.get("direction", c.direction)
        if direction not in ("higher", "lower"):
            raise ConfigError(f"verdicts.{c.key}.direction must be 'higher' or 'lower', got {direction!r}")
        green, amber = float(o.get("green", c.green)), float(o.get("amber", c.amber))
        if (direction == "higher" and green < amber) or (direction == "lower" and green > amber):
            raise ConfigError(f"verdicts.{c.key}: green ({green}) must be at least as strict as amber ({amber})")
        out.append(Check(c.area, c.key, c.label, direction, green, amber))
    return tuple(out)


def verdicts(values: dict[str, float | None], checks: tuple[Check, ...]) -> dict[str, Any]:
    """{area: {verdict, checks: [...]}} for the given headline values."""
    out: dict[str, Any] = {}
    for c in checks:
        value = values.get(c.key)
        entry = {"check": c.key, "label": c.label, "value": value, "direction": c.direction,
                 "green": c.green, "amber": c.amber, "verdict": c.verdict(value)}
        area = out.setdefault(c.area, {"verdict": "n/a", "checks": []})
        area["checks"].append(entry)
    for area in out.values():
        rated = [e["verdict"] for e in area["checks"] if e["verdict"] in ORDER]
        area["verdict"] = max(rated, key=ORDER.get) if rated else "n/a"
    return out
