"""The privacy card of a federated run: every site's ledger, the released (maximum) epsilon,
and the optional site-level guarantee, reported separately."""

from __future__ import annotations

import math

from dpsynth.privacy.ledger import Ledger
from dpsynth.reports.privacy_card import privacy_card, privacy_card_markdown

PATIENT_AT_TWO_SITES = (
    "Each site's guarantee covers the patients in that site's rows. A patient seen at two sites is "
    "in two ledgers, and their guarantee is the composition of both (up to the sum of the two epsilons); "
    "that every patient appears at one site only is the user's declaration, which dpsynth cannot check."
)


def federated_card(*, generator: str, site_ledgers: dict[str, Ledger], site_rows: dict[str, int], rounds: int,
                   privacy_unit: str, secure_mode: bool, site_level: dict | None) -> dict:
    """The standard card of the worst site's ledger, plus a ``federated`` section with all sites."""
    worst = max(site_ledgers, key=lambda s: site_ledgers[s].epsilon())
    card = privacy_card(site_ledgers[worst], generator=generator, n_train=sum(site_rows.values()),
                        privacy_unit=privacy_unit, secure_mode=secure_mode)
    sites = []
    for name, ledger in site_ledgers.items():
        sgd = [e for e in ledger.entries if e.mechanism == "dp-sgd"]
        sites.append({
            "site": name, "rows": site_rows[name], "epsilon": round(ledger.epsilon(), 6), "delta": ledger.delta,
            "dp_sgd_steps": sum(e.steps for e in sgd),
            "noise_multiplier": sgd[0].noise_multiplier if sgd else None,
            "sample_rate": sgd[0].sample_rate if sgd else None,
            "ledger": ledger.to_dict(),
        })
    released_eps = max(s["epsilon"] for s in sites)
    card["epsilon"] = released_eps
    card["delta"] = max(s["delta"] for s in sites)
    card["federated"] = {
        "rounds": rounds,
        "aggregation": "FedAvg (Flower), post-processing of the sites' DP-SGD outputs",
        "released_epsilon": released_eps,
        "released_delta": card["delta"],
        "released_rule": "maximum over sites of each site's composed ledger (sample-level, per patient row)",
        "worst_site": worst,
        "sites": sites,
        "patient_at_two_sites": PATIENT_AT_TWO_SITES,
        "site_level_dp": site_level,
    }
    card["public_inputs"] += "; each site's row count; the number of sites and rounds"
    return card


def federated_card_markdown(card: dict) -> str:
    fed = card["federated"]
    lines = [privacy_card_markdown(card).rstrip(), "", "## Federated training", "",
             f"Released epsilon = {fed['released_epsilon']} (delta {fed['released_delta']:.3g}): "
             f"{fed['released_rule']}. {fed['aggregation']}; {fed['rounds']} rounds.", "",
             "| site | rows | epsilon | delta | DP-SGD steps (all rounds, one accountant) | noise multiplier | "
             "sampling rate |", "|---|---|---|---|---|---|---|"]
    for s in fed["sites"]:
        sigma = "-" if s["noise_multiplier"] is None else f"{s['noise_multiplier']:.4g}"
        q = "-" if s["sample_rate"] is None else f"{s['sample_rate']:.4g}"
        lines.append(f"| {s['site']} | {s['rows']} | {s['epsilon']:.4f} | {s['delta']:.3g} | {s['dp_sgd_steps']} | "
                     f"{sigma} | {q} |")
    lines += ["", f"**A patient at two sites.** {fed['patient_at_two_sites']}", ""]
    for s in fed["sites"]:
        lines.append(f"- ledger of {s['site']}:")
        for e in s["ledger"]["entries"]:
            detail = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("purpose", "mechanism", "params"))
            lines.append(f"  - {e['purpose']} ({e['mechanism']}): {detail}")
    site_level = fed.get("site_level_dp")
    lines += ["", "## Site-level guarantee (separate)", ""]
    if not site_level:
        lines.append("None: only the sample-level guarantee above holds (a whole site is not protected).")
    else:
        eps = site_level["epsilon"]
        lines += [
            f"({'inf' if math.isinf(eps) else round(eps, 4)}, {site_level['delta']:.3g})-DP for adding or removing one "
            f"whole site's contribution, over {site_level['rounds']} rounds: {site_level['mechanism']}.",
            f"Clip norm {site_level['clip_norm']}, noise multiplier {site_level['noise_multiplier']:.4g} "
            f"(std {site_level['noise_std_on_average']:.4g} on the average of {site_level['sites']} sites), "
            f"secure aggregation: {site_level['secure_aggregation']}.",
            f"Not covered: {site_level['not_covered']}",
        ]
    return "\n".join(lines) + "\n"
