"""Tamper evidence for run directories and release bundles: a manifest of SHA-256 hashes.

``manifest.json`` lists every file of a run or bundle with its SHA-256 and size. A model whose
ledger, weights or config were edited after they were saved no longer matches its manifest and
is refused with one line naming the file. On top of the hashes the ledger is checked on its
own: the epsilon recorded in ``ledger.json`` (and in ``privacy_card.json``) must equal the
epsilon recomputed from the ledger's entries with its accountant, and must not exceed the
target. The weights also carry the ledger's hash in their safetensors metadata, so an edited
ledger with a recomputed manifest is still caught unless the weights are rewritten too.

A manifest is tamper-evident, not tamper-proof: whoever can rewrite every file can rewrite the
manifest. Keep a copy of ``manifest.json`` (or its hash) where the release is recorded.

Use::

    write_manifest(run_dir)            # after every file is in place
    verify_manifest(run_dir)           # raises DataError (one line) on any mismatch
    verify_ledger_file(run_dir / "ledger.json")
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from dpsynth.errors import DataError, PrivacyError

MANIFEST = "manifest.json"
FORMAT = "dpsynth-manifest/1"
_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def build_manifest(directory: str | Path, *, kind: str = "run") -> dict:
    """{"format", "kind", "algorithm", "files": {relative path: {"sha256", "bytes"}}} of every file."""
    directory = Path(directory)
    files = {p.relative_to(directory).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
             for p in _files(directory)}
    return {"format": FORMAT, "kind": kind, "algorithm": "sha256", "files": files}


def write_manifest(directory: str | Path, *, kind: str = "run") -> Path:
    """Hash every file under ``directory`` (except the manifest) into ``directory/manifest.json``."""
    directory = Path(directory)
    path = directory / MANIFEST
    path.write_text(json.dumps(build_manifest(directory, kind=kind), indent=2) + "\n")
    return path


def read_manifest(directory: str | Path) -> dict:
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: missing; without a manifest nothing shows that the ledger, weights and config "
                        "are the ones saved at training (re-train, or use `dpsynth release` on the original run)")
    try:
        raw = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("files"), dict):
        raise DataError(f"{path}: not a dpsynth manifest (expected format '{FORMAT}' with a 'files' mapping)")
    return raw


def verify_manifest(directory: str | Path, *, allow_unlisted: bool = True) -> dict:
    """Check every listed file against its SHA-256; raise DataError naming the first file that
    is missing or changed. With ``allow_unlisted=False`` a file the manifest does not list is
    refused as well (release bundles). Returns the manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    for rel, entry in sorted(manifest["files"].items()):
        path = directory / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise DataError(f"{directory / MANIFEST}: entry '{rel}' points outside the directory")
        if not path.is_file():
            raise DataError(f"{path}: listed in {MANIFEST} but missing")
        if not isinstance(entry, dict) or file_sha256(path) != entry.get("sha256"):
            raise DataError(f"{path}: SHA-256 does not match {MANIFEST} (changed after it was saved); refusing this model")
    if not allow_unlisted:
        listed = set(manifest["files"])
        for path in _files(directory):
            if path.relative_to(directory).as_posix() not in listed:
                raise DataError(f"{path}: not listed in {MANIFEST}; a release holds only the files it lists")
    return manifest


def _recorded(value) -> float:
    if value == "inf":
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def verify_ledger_dict(raw: dict, *, source: str) -> float:
    """Recompute epsilon from the ledger's entries and compare with the recorded total and the
    target; return the recomputed epsilon. ``source`` names the file in the error."""
    from dpsynth.privacy.ledger import Ledger

    try:
        ledger = Ledger.from_dict(raw)
        recomputed = ledger.epsilon()
        recorded = _recorded(raw["epsilon"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{source}: malformed ledger ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not ledger.entries:
        raise PrivacyError(f"{source}: the ledger has no entries; a trained model has at least one privacy expense")
    same = (math.isinf(recorded) and math.isinf(recomputed)) or (
        not math.isinf(recorded) and not math.isinf(recomputed)
        and abs(recorded - recomputed) <= 1e-6 * max(1.0, abs(recomputed)))
    if not same:
        raise PrivacyError(f"{source}: recorded epsilon {raw['epsilon']} does not match {recomputed:.6g} recomputed "
                           f"from its {len(ledger.entries)} entries; refusing this model")
    target = ledger.target_epsilon
    if target is not None and not math.isinf(recomputed) and recomputed > float(target) * (1 + 1e-9):
        raise PrivacyError(f"{source}: recomputed epsilon {recomputed:.6g} exceeds the target {target}")
    return recomputed


def verify_ledger_file(path: str | Path) -> float:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable ledger ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a ledger is a JSON object")
    return verify_ledger_dict(raw, source=str(path))


def verify_card_matches(card_path: str | Path, epsilon: float) -> None:
    """The privacy card's epsilon must be the ledger's (the card rounds to 6 decimals)."""
    card_path = Path(card_path)
    if not card_path.is_file():
        return
    try:
        card = json.loads(card_path.read_text())
        value = _recorded(card["epsilon"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise DataError(f"{card_path}: unreadable privacy card (no numeric 'epsilon')") from None
    if math.isinf(value) != math.isinf(epsilon) or (not math.isinf(value) and abs(value - epsilon) > 1e-5 * max(1, epsilon)):
        raise PrivacyError(f"{card_path}: epsilon {card['epsilon']} does not match the ledger's {epsilon:.6g}")


def weights_ledger_hash(weights_path: str | Path) -> str | None:
    """The ledger SHA-256 recorded in the weights' safetensors metadata (None for older runs)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as fh:
            return (fh.metadata() or {}).get("ledger_sha256")
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise DataError(f"{weights_path}: unreadable weights ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def verify_model_dir(directory: str | Path, *, require_manifest: bool = True, allow_unlisted: bool = True) -> float:
    """Everything ``generate`` and ``release`` check before trusting a model directory: the
    manifest (when present, or always with ``require_manifest``), the ledger's recomputed
    epsilon, the privacy card, and the ledger hash bound into the weights. Returns epsilon."""
    directory = Path(directory)
    if require_manifest or (directory / MANIFEST).is_file():
        verify_manifest(directory, allow_unlisted=allow_unlisted)
    ledger_path = directory / "ledger.json"
    epsilon = verify_ledger_file(ledger_path)
    verify_card_matches(directory / "privacy_card.json", epsilon)
    weights = directory / "weights.safetensors"
    if weights.is_file():
        bound = weights_ledger_hash(weights)
        if bound is not None and bound != file_sha256(ledger_path):
            raise DataError(f"{ledger_path}: does not match the ledger hash stored in {weights.name}; refusing this model")
    return epsilon
