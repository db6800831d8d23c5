"""``audit``: an empirical epsilon lower bound for a saved run (Steinke, Nasr and Jagielski 2023),
retraining its generator once with canaries on a split its modality provides."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from dpsynth import modalities
from dpsynth.artifacts import LoadedRun, load_run
from dpsynth.config import build_generator
from dpsynth.errors import DpsynthError
from dpsynth.modalities.base import torch_threads
from dpsynth.privacy.budget import Budget
from dpsynth.workflows.jsonio import json_default


def run_budget(loaded: LoadedRun) -> Budget:
    """The budget a saved run was trained with (the non-private reference when its ledger says so)."""
    from dpsynth.config import config_from_dict

    if loaded.ledger.non_private:
        return Budget.non_private_reference()
    return config_from_dict(loaded.config, source=f"{loaded.path}/config.yaml").privacy.budget()


def audit(*, run: str | Path, canaries: int = 1000, method: str = "auto", seed: int = 0, confidence: float = 0.95,
          out: str | Path | None = None, data_split: str = "holdout") -> dict:
    """Empirical epsilon lower bound for a saved run (Steinke, Nasr and Jagielski 2023): retrain
    its generator with its config and budget once, with canaries.

    The audit is itself a training run on real data, so its result has a privacy cost of its own:
    ``data_split="holdout"`` (default) retrains on the run's holdout split, which is not in the
    released model's training split, so the audit costs the release nothing;
    ``data_split="train"`` retrains on the training split and charges the audit's own ledger,
    reported as ``audit_ledger`` (releasing model and audit together costs both epsilons).
    The saved run and its ledger are untouched. The result is internal: it is written to
    ``out`` (default ``internal_eval/<run name>/audit.json`` beside the run) and returned."""
    from dpsynth.config import config_from_dict
    from dpsynth.privacy.audit import audit_generator
    from dpsynth.reports.internal import INTERNAL_NOTICE, check_outside_runs, default_internal_dir

    if data_split not in ("holdout", "train"):
        raise DpsynthError(f"audit data must be 'holdout' or 'train', got '{data_split}'")
    loaded = load_run(run)
    data = loaded.run.get("data")
    if data is None:
        raise DpsynthError(f"{run}: run.json does not record its data source")
    modality = modalities.for_run(loaded)
    modality.check_audit(loaded, run=run)
    out = check_outside_runs(default_internal_dir(loaded.path) / "audit.json" if out is None else out,
                             what="audit result")
    config = config_from_dict(loaded.config, source=f"{loaded.path}/config.yaml")
    splits, schema, _ = modality.recorded_splits(loaded)
    from dpsynth.privacy.unit_audit import audit_table_data, run_rows_per_unit

    audited = audit_table_data(splits, data_split, schema, max_rows=run_rows_per_unit(loaded.run, schema), seed=seed)
    frame = audited.frame
    generator = build_generator(config.generator, config.params)
    start = time.perf_counter()
    with torch_threads(config.threads):
        result = audit_generator(generator, audited, budget=run_budget(loaded),
                                 rng=np.random.default_rng(seed), canaries=canaries, method=method,
                                 confidence=confidence)
    audit_ledger = generator.ledger_
    audit_eps = audit_ledger.epsilon()
    result = {"notice": INTERNAL_NOTICE, **result}
    result["audit_data"] = data_split
    if data_split == "holdout":
        result["audit_budget"] = (f"the audit retrained on the holdout split ({len(frame)} rows), which is not in the "
                                  "released model's training split: it costs the release no epsilon")
    else:
        result["audit_budget"] = (f"the audit retrained on the released model's training split ({len(frame)} rows) and "
                                  f"spent its own epsilon={audit_eps:.3g} (audit ledger); releasing the audit result "
                                  "with the model costs both epsilons")
    result["audit_ledger"] = audit_ledger.to_dict()
    result["audit_epsilon"] = None if math.isinf(audit_eps) else audit_eps
    result["run"] = str(Path(run))
    result["run_epsilon"] = None if loaded.ledger.non_private else loaded.ledger.epsilon()
    result["seconds"] = round(time.perf_counter() - start, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=json_default))
    result["out"] = str(out)
    return result
