"""What a release bundle may hold: the known DP artifacts of a run, the public part of its run
record, and the check that refuses (one line, naming the file) anything else."""

from __future__ import annotations

import os
from pathlib import Path

from dpsynth.artifacts_manifest import MANIFEST
from dpsynth.errors import PrivacyError

# file -> what it is; everything else in a run is refused
DP_ARTIFACTS = {
    "weights.safetensors": "model weights (trained with DP)",
    "generator.json": "generator name and hyper-parameters (public choices)",
    "config.yaml": "run configuration (public choices)",
    "schema.yaml": "public schema (declared, or estimated with DP and charged to the ledger)",
    "ledger.json": "privacy ledger: every privacy expense",
    "privacy_card.json": "privacy card (from the ledger)",
    "privacy_card.md": "privacy card, readable (from the ledger)",
    "run.json": "run record: data name, split fractions, public training-row count",
    MANIFEST: "SHA-256 of every file",
}
_WHY = {".html": "a report", ".md": "a report", ".png": "an image", ".csv": "a table", ".parquet": "a table",
        ".npz": "an image array"}
# run.json keys a bundle keeps (public facts); fit time and local paths stay inside
_RUN_KEYS = ("data", "modality", "split", "n_train", "schema_inferred_with_dp", "dp_plan")



def _is_site_ledger(rel: str) -> bool:
    """A federated run's per-site ledgers (``site_ledgers/<site>.json``): privacy expenses, DP artifacts."""
    return rel.startswith("site_ledgers/") and rel.endswith(".json") and rel.count("/") == 1


def check_run_files(run: Path) -> None:
    """Refuse (one line, naming the file) anything in the run that is not a known DP artifact."""
    for path in sorted(run.rglob("*")):
        if path.is_dir():
            continue
        rel = path.relative_to(run).as_posix()
        if rel in DP_ARTIFACTS or _is_site_ledger(rel):
            continue
        why = _WHY.get(path.suffix.lower(), "not a known DP artifact")
        if rel.startswith("report/") or rel.endswith("audit.json") or "report" in path.name:
            why = "an evaluation computed from real rows"
        raise PrivacyError(f"{path}: not DP ({why}); a release holds only {', '.join(sorted(DP_ARTIFACTS))}; "
                           "move it out of the run")


def _public_run_record(run: dict) -> dict:
    out = {k: run[k] for k in _RUN_KEYS if k in run}
    data = out.get("data")
    if isinstance(data, str) and ("/" in data or os.sep in data):
        out["data"] = Path(data).name  # the file's name, not where it lives inside the hospital
    return out
