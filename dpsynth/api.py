"""The plain Python API: train, generate, evaluate. The CLI calls these and nothing deeper.

A thin public face: each verb is a module of :mod:`dpsynth.workflows` written once for every
modality (:mod:`dpsynth.modalities`); the names below are the stable ones.

Example::

    from dpsynth import api
    from dpsynth.config import RunConfig, PrivacyConfig
    result = api.train(data="actg175", out="runs/actg", config=RunConfig(privacy=PrivacyConfig(epsilon=1.0)))
    api.generate(model="runs/actg", n=10_000, out="synth.csv", seed=1)
    api.generate(model="runs/actg", n=10_000, out="balanced.csv", balance=["race", "gender"])
    api.audit(run="runs/actg")                      # empirical epsilon lower bound
    api.sweep(config="configs/sweep_actg175.yaml", out="sweeps/actg175")
"""

from __future__ import annotations

# the modalities: classify a source once; what a table / an image source needs
from dpsynth.modalities import for_run, for_source, is_image_source
from dpsynth.modalities.base import EvaluationResult, run_split, torch_threads
from dpsynth.modalities.images import ImageSplits, resolve_image_splits
from dpsynth.modalities.table_eval import (MIN_EVALUATION_ROWS, check_evaluation_rows, evaluate_full,
                                           load_synthetic, quick_evaluate)
from dpsynth.modalities.table_source import (require_reviewed, resolve_splits, resolve_splits_clipped, resolve_table,
                                             resolve_table_clipped, resolve_table_units, select_code_domains,
                                             training_data)
from dpsynth.modalities.table_writers import (OUTPUT_SUFFIXES, balanced_sample, write_frame,
                                              write_rows)
# the workflows: one verb each
from dpsynth.workflows.audit import audit, run_budget
from dpsynth.workflows.evaluate import (evaluate_explicit, evaluate_files, evaluate_image_run,
                                        evaluate_run)
from dpsynth.workflows.federated import federated
from dpsynth.workflows.generate import GenerateResult, generate, generate_images, parse_conditions
from dpsynth.workflows.related_tables import (evaluate_relational, generate_relational,
                                              is_relational_run, is_relational_schema)
from dpsynth.workflows.release import release
from dpsynth.workflows.sweep import sweep
from dpsynth.workflows.train import TrainResult, train

__all__ = [
    "EvaluationResult", "GenerateResult", "ImageSplits", "MIN_EVALUATION_ROWS", "OUTPUT_SUFFIXES",
    "TrainResult", "audit", "balanced_sample", "check_evaluation_rows", "evaluate_explicit", "evaluate_files",
    "evaluate_full", "evaluate_image_run", "evaluate_relational", "evaluate_run", "federated", "for_run",
    "for_source", "generate", "generate_images", "generate_relational", "is_image_source",
    "is_relational_run", "is_relational_schema", "load_synthetic", "parse_conditions", "quick_evaluate",
    "release", "require_reviewed", "resolve_image_splits", "resolve_splits", "resolve_splits_clipped",
    "resolve_table", "resolve_table_clipped", "resolve_table_units", "run_budget", "run_split",
    "select_code_domains", "sweep", "torch_threads", "train", "training_data", "write_frame", "write_rows",
]
