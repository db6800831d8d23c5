"""The privacy card: what a data custodian needs to check and reproduce a run's DP claim."""

from __future__ import annotations

import math

from dpsynth.privacy.ledger import Ledger


def privacy_card(ledger: Ledger, *, generator: str, n_train: int, privacy_unit: str, secure_mode: bool) -> dict:
    eps = ledger.epsilon()
    sgd = [e for e in ledger.entries if e.mechanism == "dp-sgd"]
    card = {
        "generator": generator,
        "non_private": ledger.non_private,
        "epsilon": "inf" if math.isinf(eps) else round(eps, 6),
        "target_epsilon": ledger.target_epsilon,
        "delta": ledger.delta,
        "accountant": ledger.accountant,
        "privacy_unit": privacy_unit,
        "n_train": n_train,
        "secure_mode": secure_mode,
        "preprocessing_epsilon": "inf" if ledger.non_private else round(ledger.preprocessing_epsilon(), 6),
        "dp_sgd": [
            {
                "purpose": e.purpose,
                "noise_multiplier": e.noise_multiplier,
                "sample_rate": e.sample_rate,
                "steps": e.steps,
                "max_grad_norm": e.params.get("max_grad_norm"),
                "sampling": "Poisson (opacus DPDataLoader)",
            }
            for e in sgd
        ],
        "expenses": [e.to_dict() for e in ledger.entries],
        "public_inputs": "schema (column kinds, bounds, category lists) and the number of training rows",
    }
    return card


def privacy_card_markdown(card: dict) -> str:
    lines = [f"# Privacy card: {card['generator']}", ""]
    if card["non_private"]:
        lines += ["**NON-PRIVATE reference run: epsilon = infinity. Do not release its output.**", ""]
    lines += [
        "| item | value |",
        "|---|---|",
        f"| epsilon (composed over every ledger entry) | {card['epsilon']} |",
        f"| target epsilon | {card['target_epsilon']} |",
        f"| delta | {card['delta']:.3g} |",
        f"| accountant | {card['accountant']} (opacus) |",
        f"| privacy unit | {card['privacy_unit']} |",
        f"| training rows (treated as public) | {card['n_train']} |",
        f"| preprocessing epsilon (alone) | {card['preprocessing_epsilon']} |",
        f"| secure RNG | {card['secure_mode']} |",
    ]
    for s in card["dp_sgd"]:
        lines += [
            f"| DP-SGD: {s['purpose']} | clip norm {s['max_grad_norm']}, noise multiplier {s['noise_multiplier']:.4g}, "
            f"sampling rate {s['sample_rate']:.4g} ({s['sampling']}), steps {s['steps']} |",
        ]
    lines += ["", "## Every privacy expense", ""]
    for e in card["expenses"]:
        detail = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("purpose", "mechanism"))
        lines.append(f"- **{e['purpose']}** ({e['mechanism']}): {detail}")
    lines += ["", f"Public inputs: {card['public_inputs']}.", ""]
    return "\n".join(lines)
