"""What a federated run leaves behind: its result object and its run directory (shared by the
DP-SGD and the DP-marginal paths)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dpsynth.federated.config import FederatedConfig
from dpsynth.privacy.ledger import Ledger
from dpsynth.safe_io import atomic_dir


@dataclass
class FederatedResult:
    run_dir: Path
    generator: object
    epsilon: float
    site_ledgers: dict[str, Ledger]
    site_level: dict | None
    fit_seconds: float
    reports: list


def _write_run(out: Path, *, generator, schema, ledger: Ledger, config: FederatedConfig, run: dict, card: dict,
               site_ledgers: dict[str, Ledger], secure_mode: bool) -> None:
    """A normal dpsynth run directory (the worst site's ledger) plus the federated card and every
    site's ledger, staged and moved into place at once."""
    from dpsynth.artifacts import save_run
    from dpsynth.artifacts_manifest import write_manifest
    from dpsynth.federated.card import federated_card_markdown

    with atomic_dir(out, overwrite=True) as staged:  # the caller checked --overwrite and the folder's markers
        save_run(staged, generator=generator, schema=schema, ledger=ledger, config=config.to_dict(), run=run,
                 secure_mode=secure_mode, overwrite=True)
        (staged / "privacy_card.json").write_text(json.dumps(card, indent=2))
        (staged / "privacy_card.md").write_text(federated_card_markdown(card))
        sites_dir = staged / "site_ledgers"
        sites_dir.mkdir()
        for name, site_ledger in site_ledgers.items():
            site_ledger.save(sites_dir / f"{name}.json")
        write_manifest(staged)  # the federated card and site ledgers were written after save_run's manifest
