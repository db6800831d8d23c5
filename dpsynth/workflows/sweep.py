"""Sweeps: train and evaluate generators over a grid of epsilons and seeds, resumably.

A sweep config (YAML; unknown keys are rejected) looks like::

    description: dp-gan vs independent on ACTG 175
    data: actg175                 # embedded name or a file (then give schema:)
    epsilons: [0.5, 1, 2, 4, 8, inf]   # inf = Budget.non_private_reference(), the named reference
    seeds: [0, 1, 2]              # training seeds; the split is the same for every cell
    privacy: {delta: null, accountant: rdp, preprocessing_share: 0.05}
    split: {seed: 0, holdout: 0.2, test: 0.2}
    n_synthetic: null             # rows sampled per cell (default: the training split's size)
    rebalance: [race, gender]     # also evaluate a --balance'd release of each model (optional)
    audit: {canaries: 1000, method: auto}   # empirical epsilon lower bound per cell (optional)
    evaluation: {...}             # evaluation config sections (as in configs/evaluation_thresholds.yaml)
    generators:
      - {name: dp-gan, params: {epochs: 100}}
      - {name: dp-gan, label: dp-gan-fair, params: {clipping: group, balanced_sampling: true}}
      - {name: independent}

Each cell (generator x epsilon x seed) is a directory ``cells/LABEL/eps=E/seed=S/`` holding the
run (weights, ledger, privacy card), its evaluation report(s) and ``cell.json``, written
atomically last. A rerun skips every cell whose ``cell.json`` exists: nothing is retrained,
no ledger is charged again (each run has its own ledger). A directory without ``cell.json``
(a killed run) is removed and recomputed. A generator that has no non-private reference is
skipped at epsilon=inf with a message saying so.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from dpsynth.config import build_generator
from dpsynth.errors import DpsynthError, PrivacyError
from dpsynth.workflows.jsonio import json_default as _json_default
from dpsynth.workflows.sweep_config import (DEFAULT_EPSILONS, SweepConfig, SweepGenerator, _eps_text,  # noqa: F401
                                            load_sweep_config, sweep_config_from_dict)


# ---- running ------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    out: Path
    records: list[dict]
    report_files: dict
    counts: dict
    seconds: float


def cell_dir(out: Path, gen: SweepGenerator, epsilon: float, seed: int) -> Path:
    return out / "cells" / gen.label / f"eps={_eps_text(epsilon)}" / f"seed={seed}"


def run_sweep(config: SweepConfig, *, out: str | Path | None = None, progress: Callable[[dict], None] | None = None,
              retry_failed: bool = False) -> SweepResult:
    """Run every missing cell, then write sweep.json / sweep.md / sweep.html into ``out``.
    One sweep per folder at a time: a second one into the same folder fails at once."""
    from dpsynth import safe_io

    out = Path(out or config.out or Path("sweeps") / config.name)
    with safe_io.output_lock(out):
        return _run_sweep(config, out=out, progress=progress, retry_failed=retry_failed)


def _run_sweep(config: SweepConfig, *, out: Path, progress, retry_failed: bool) -> SweepResult:
    from dpsynth.modalities.table_source import resolve_splits
    from dpsynth.reports.sweep_report import write_sweep_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    splits, schema = resolve_splits(config.data, schema_path=config.schema, split=config.split)
    cells = [(g, e, s) for g in config.generators for e in config.epsilons for s in config.seeds]
    emit = progress or (lambda info: None)
    counts = {"computed": 0, "reused": 0, "skipped": 0, "failed": 0}
    records, start = [], time.perf_counter()
    for index, (gen, eps, seed) in enumerate(cells):
        where = {"event": "cell", "index": index, "cells": len(cells), "label": gen.label,
                 "epsilon": _eps_text(eps), "seed": seed}
        record = _finished(cell_dir(out, gen, eps, seed), config.fingerprint(gen, eps, seed), retry_failed)
        if record is not None:
            counts["reused"] += 1
            emit({**where, "status": "reused", "message": record.get("message", "")})
        else:
            emit({**where, "status": "running"})
            record = _run_cell(config, gen, eps, seed, out=out, splits=splits, schema=schema, progress=emit)
            key = {"ok": "computed", "skipped": "skipped", "failed": "failed"}[record["status"]]
            counts[key] += 1
            emit({**where, "status": record["status"], "message": record.get("message", ""),
                  "seconds": record.get("seconds")})
        records.append(record)
    files = write_sweep_report(out, config=config.to_dict(), records=records)
    return SweepResult(out=out, records=records, report_files=files, counts=counts,
                       seconds=time.perf_counter() - start)


def _finished(cdir: Path, fingerprint: str, retry_failed: bool) -> dict | None:
    marker = cdir / "cell.json"
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
    except ValueError:
        return None  # unreadable marker: recompute the cell
    if record.get("fingerprint") != fingerprint:
        raise DpsynthError(f"{cdir} was computed with other settings than this sweep config; "
                           "use another --out (or delete the cell)")
    if record.get("status") == "failed" and retry_failed:
        return None
    return record


def _write_atomic(path: Path, payload: dict) -> None:
    from dpsynth.safe_io import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=_json_default))


def _run_cell(config: SweepConfig, gen: SweepGenerator, eps: float, seed: int, *, out: Path, splits, schema,
              progress) -> dict:
    from dpsynth.generators.registry import get_generator_class

    cdir = cell_dir(out, gen, eps, seed)
    if cdir.exists():
        shutil.rmtree(cdir)  # leftovers of a killed run: no cell.json, so nothing in it was finished
    cdir.mkdir(parents=True)
    record = {"label": gen.label, "generator": gen.name, "params": gen.params, "epsilon": _eps_text(eps),
              "seed": seed, "fingerprint": config.fingerprint(gen, eps, seed), "non_private": math.isinf(eps)}
    start = time.perf_counter()
    cls = get_generator_class(gen.name)
    from dpsynth.modalities import by_name

    if not by_name(getattr(cls, "modality", "table")).sweepable:
        record.update(status="skipped", message=f"generator '{gen.name}' is an image generator; sweeps are tabular")
    elif math.isinf(eps) and not getattr(cls, "supports_non_private", True):
        record.update(status="skipped", message=f"generator '{gen.name}' has no non-private reference")
    else:
        try:
            record.update(_train_and_evaluate(config, gen, eps, seed, cdir=cdir, splits=splits, schema=schema,
                                              progress=progress))
            record["status"] = "ok"
        except DpsynthError as exc:
            message = str(exc).splitlines()[0]
            if math.isinf(eps) and isinstance(exc, PrivacyError) and not (cdir / "run" / "ledger.json").is_file():
                record.update(status="skipped", message=f"generator '{gen.name}' does not support the non-private "
                                                        f"reference (epsilon=inf): {message}")
            else:
                record.update(status="failed", message=message)
    record["seconds"] = round(time.perf_counter() - start, 2)
    _write_atomic(cdir / "cell.json", record)  # last: marks the cell finished
    return record


def _train_and_evaluate(config: SweepConfig, gen: SweepGenerator, eps: float, seed: int, *, cdir: Path, splits,
                        schema, progress) -> dict:
    from dpsynth.artifacts import load_run
    from dpsynth.modalities.base import torch_threads
    from dpsynth.modalities.table_eval import evaluate_full
    from dpsynth.modalities.table_writers import balanced_sample
    from dpsynth.workflows.train import train
    from dpsynth.data.table import TableData
    from dpsynth.privacy.audit import audit_generator
    from dpsynth.reports.sweep_report import cell_privacy_card, headline_metrics

    run_config = config.run_config(gen, eps, seed)  # epsilon=inf is recorded as such; the budget below decides

    def train_progress(info: dict) -> None:
        progress({**info, "event": "train", "label": gen.label, "epsilon": _eps_text(eps), "seed": seed,
                  "spent_epsilon": info.get("epsilon")})

    train(data=config.data, out=cdir / "run", config=run_config, schema_path=config.schema,
          budget=config.budget(eps), progress=train_progress)
    loaded = load_run(cdir / "run")
    n_syn = int(config.n_synthetic or len(splits.train))
    title = f"{gen.label} at epsilon={_eps_text(eps)}, seed {seed}"
    with torch_threads(config.threads):
        synthetic = loaded.generator.sample(n_syn, rng=np.random.default_rng([seed, 1])).frame
    ev = evaluate_full(train=splits.train, holdout=splits.holdout, test=splits.test, synthetic=synthetic,
                       schema=schema, loaded=loaded, report_dir=cdir / "report", seed=seed, title=title,
                       config=config.evaluation)
    out = {"metrics": headline_metrics(ev.results), "privacy_card": cell_privacy_card(loaded.ledger),
           "n_synthetic": n_syn, "evaluate_seconds": round(ev.seconds, 2)}
    if config.rebalance:
        try:
            with torch_threads(config.threads):
                balanced = balanced_sample(loaded, n=n_syn, rng=np.random.default_rng([seed, 2]),
                                           balance=config.rebalance)
            bev = evaluate_full(train=splits.train, holdout=splits.holdout, test=splits.test, synthetic=balanced,
                                schema=schema, loaded=loaded, report_dir=cdir / "report_balanced", seed=seed,
                                title=f"{title}, balanced on {','.join(config.rebalance)}",
                                config=config.evaluation)
            out["balanced_metrics"] = headline_metrics(bev.results)
        except DpsynthError as exc:
            out["balanced_error"] = str(exc).splitlines()[0]
    if config.audit is not None:
        audit_cfg = dict(config.audit)
        generator = build_generator(gen.name, gen.params)
        with torch_threads(config.threads):
            # on the holdout split: not in the released model's training split, so the audit costs it nothing
            result = audit_generator(generator, TableData(splits.holdout.reset_index(drop=True), schema),
                                     budget=config.budget(eps),
                                     rng=np.random.default_rng([seed, 3]), canaries=int(audit_cfg.get("canaries", 1000)),
                                     method=audit_cfg.get("method", "auto"),
                                     confidence=float(audit_cfg.get("confidence", 0.95)))
        result["audit_data"] = "holdout"
        result["audit_ledger"] = generator.ledger_.to_dict()
        _write_atomic(cdir / "audit.json", result)
        out["audit"] = {k: result[k] for k in ("epsilon_lower_bound", "claimed_epsilon", "method", "canaries",
                                               "guesses", "correct", "confidence", "verdict", "audit_data")}
    return out


def sweep(*, config: str | Path, out: str | Path | None = None, progress: Callable[[dict], None] | None = None,
          retry_failed: bool = False) -> SweepResult:
    """Train and evaluate generators over a grid of epsilons and seeds (resumable): ``config`` is a YAML path."""
    return run_sweep(load_sweep_config(config), out=out, progress=progress, retry_failed=retry_failed)
