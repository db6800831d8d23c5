"""Run directories: weights (safetensors), generator hyper-parameters, schema, ledger, config and
privacy card. Written atomically (a temporary sibling directory renamed into place), loaded
without pickle. Nothing derived from the data outside the ledger is written."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import dpsynth
from dpsynth.artifacts_manifest import file_sha256, verify_model_dir, write_manifest
from dpsynth.data.schema import Schema
from dpsynth.errors import DataError, DpsynthError
from dpsynth.privacy.ledger import Ledger
from dpsynth.safe_io import atomic_dir, check_output_dir
from dpsynth.reports.privacy_card import privacy_card, privacy_card_markdown

WEIGHTS = "weights.safetensors"


@dataclass
class LoadedRun:
    generator: object
    schema: Schema
    ledger: Ledger
    config: dict
    run: dict
    path: Path


def save_run(run_dir: str | Path, *, generator, schema: Schema, ledger: Ledger, config: dict, run: dict,
             secure_mode: bool, overwrite: bool = False) -> Path:
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise DpsynthError(f"run directory {run_dir} exists and is not empty (use --overwrite)")
    check_output_dir(run_dir, overwrite=overwrite)  # never replaces a folder dpsynth did not write
    with atomic_dir(run_dir, overwrite=overwrite) as tmp:
        ledger.save(tmp / "ledger.json")
        state = {k: v.contiguous() for k, v in generator.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"generator": generator.name, "dpsynth": dpsynth.__version__,
                                                       "ledger_sha256": file_sha256(tmp / "ledger.json")})
        (tmp / "generator.json").write_text(json.dumps(
            {"name": generator.name, "modality": generator.modality, "params": generator.get_params(),
             "dpsynth_version": dpsynth.__version__}, indent=2))
        schema.save(tmp / "schema.yaml")
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp / "run.json").write_text(json.dumps(run, indent=2))
        card = privacy_card(ledger, generator=generator.name, n_train=run.get("n_train", 0),
                            privacy_unit=schema.privacy_unit, secure_mode=secure_mode)
        (tmp / "privacy_card.json").write_text(json.dumps(card, indent=2))
        (tmp / "privacy_card.md").write_text(privacy_card_markdown(card))
        write_manifest(tmp, kind="run")
    return run_dir


def load_run(run_dir: str | Path, *, verify: bool = True, require_manifest: bool = False) -> LoadedRun:
    """Load a run or release bundle. ``verify`` checks its manifest (when present, or always
    with ``require_manifest``: generate and release), the ledger's recomputed epsilon and the
    ledger hash in the weights (see :mod:`dpsynth.artifacts_manifest`)."""
    from dpsynth.config import build_generator

    run_dir = Path(run_dir)
    needed = [WEIGHTS, "generator.json", "schema.yaml", "ledger.json"]
    if not run_dir.is_dir():
        raise DataError(f"model directory not found: {run_dir}")
    missing = [f for f in needed if not (run_dir / f).is_file()]
    if missing:
        raise DataError(f"{run_dir} is not a dpsynth model directory (missing {', '.join(missing)})")
    if verify:
        verify_model_dir(run_dir, require_manifest=require_manifest)
    try:
        meta = json.loads((run_dir / "generator.json").read_text())
        ledger = Ledger.load(run_dir / "ledger.json")
        state = load_file(str(run_dir / WEIGHTS))
    except (ValueError, KeyError, TypeError, AttributeError, OSError, SafetensorError) as exc:
        raise DataError(f"{run_dir}: corrupt model files ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not isinstance(meta.get("params", {}), dict):
        raise DataError(f"{run_dir / 'generator.json'}: needs 'name' (a generator name) and 'params' (a mapping)")
    from dpsynth.data.image_schema import load_any_schema

    schema = load_any_schema(run_dir / "schema.yaml")
    generator = build_generator(meta["name"], meta.get("params", {}))
    try:
        generator.load_state_dict(state, schema=schema)
    except DpsynthError as exc:
        raise DataError(f"{run_dir / WEIGHTS}: {exc}") from None
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{run_dir / WEIGHTS}: does not fit generator '{meta['name']}' and its schema ({first})") from None
    generator.ledger_ = ledger
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
        run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    except (ValueError, yaml.YAMLError, OSError) as exc:
        raise DataError(f"{run_dir}: corrupt config.yaml or run.json ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict) or not isinstance(run, dict):
        raise DataError(f"{run_dir}: config.yaml and run.json must hold mappings")
    return LoadedRun(generator=generator, schema=schema, ledger=ledger, config=config, run=run, path=run_dir)
