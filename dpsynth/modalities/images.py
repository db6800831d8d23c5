"""Image sets (MedMNIST-style .npz, folders of PNG/JPEG/DICOM with labels.csv) as a modality:
see :class:`dpsynth.modalities.base.Modality`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dpsynth import safe_io
from dpsynth.data.splits import SplitSpec
from dpsynth.errors import DpsynthError
from dpsynth.modalities.base import (EvaluationResult, TrainingSet, TrainOptions, run_split, scan_not_run,
                                     torch_threads)


@dataclass
class ImageSplits:
    train: Any
    holdout: Any
    test: Any

    def to_dict(self) -> dict:
        return {"n_train": len(self.train), "n_holdout": len(self.holdout), "n_test": len(self.test)}


def resolve_image_splits(data: str, *, schema_path=None, split: SplitSpec) -> ImageSplits:
    """The source's own train/val/test splits (val is the holdout); a source with only a train
    split is cut three ways with ``split`` (seeded, deterministic)."""
    from dpsynth.data.image_schema import load_any_schema
    from dpsynth.data.images import load_image_splits

    schema = load_any_schema(schema_path) if schema_path is not None else None
    parts = load_image_splits(data, schema=schema)
    if "val" in parts and "test" in parts:
        return ImageSplits(parts["train"], parts["val"], parts["test"])
    full = parts["train"]
    order = np.random.default_rng(split.seed).permutation(len(full))
    n_test, n_hold = int(round(split.test * len(full))), int(round(split.holdout * len(full)))
    pick = lambda idx: full.subset(np.sort(idx))  # noqa: E731
    return ImageSplits(pick(order[n_test + n_hold:]), pick(order[n_test:n_test + n_hold]), pick(order[:n_test]))


class Images:
    name = "image"
    noun = "an image source"
    default_generator = "dp-diffusion-image"
    writes_folders = True
    sweepable = False
    quick_evaluates = False

    # ---- train ----------------------------------------------------------------------------
    def check_options(self, options: TrainOptions) -> None:
        return None  # the table options (schema inference, clipping, patient bounds) do not apply

    def engine(self, requested, *, data, generator, schema_path, options: TrainOptions) -> str:
        return "numpy"  # images are trained in memory

    def training_set(self, *, data, schema_path, config, budget, rng, options: TrainOptions) -> TrainingSet:
        splits = resolve_image_splits(data, schema_path=schema_path, split=config.split)
        budget.resolve_delta(len(splits.train))
        split = {**config.split.to_dict(), **splits.to_dict(), "source_splits": "val/test from the source when present"}
        return TrainingSet(data=splits.train, splits=splits, schema=splits.train.schema, facts={"split": split})

    def run_record(self, training: TrainingSet, *, data, fit_seconds: float, generator) -> dict:
        return {"data": str(Path(data).resolve()), "modality": "image", "split": training.facts["split"],
                "n_train": len(training.splits.train), "fit_seconds": round(fit_seconds, 3),
                "dp_plan": getattr(generator, "dp_plan_", None)}

    # ---- a saved run ----------------------------------------------------------------------
    def recorded_splits(self, loaded):
        splits = resolve_image_splits(loaded.run.get("data"), schema_path=Path(loaded.path) / "schema.yaml",
                                      split=run_split(loaded))
        return splits, loaded.schema, {}

    def check_audit(self, loaded, *, run) -> None:
        raise DpsynthError(f"{run}: the audit supports table generators only (this run is {loaded.generator.modality})")

    # ---- generate -------------------------------------------------------------------------
    def row_bytes(self, schema) -> int:
        return schema.height * schema.width * schema.channels * schema.storage_dtype.itemsize + 64

    def write_samples(self, loaded, *, n, out: Path, seed, conditions, threads, chunk_rows=None, balance=None,
                      balance_target=None) -> None:
        """A MedMNIST-style .npz or a PNG folder with labels.csv, renamed into place."""
        import shutil

        balanced = self._balanced_labels(loaded.schema, balance, balance_target, conditions)
        rng = np.random.default_rng(seed)
        with torch_threads(threads):
            syn = loaded.generator.sample(n, conditions=conditions, rng=rng, balanced=balanced)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}{out.suffix}"
        try:
            syn.save(tmp)
            if out.exists() and out.is_dir():
                shutil.rmtree(out)
            os.replace(tmp, out)
        except BaseException:
            safe_io.remove_path(tmp)
            raise

    @staticmethod
    def _balanced_labels(schema, balance, balance_target, conditions) -> bool:
        """``--balance LABEL``: equal counts per class; images balance on their label only."""
        if balance_target is not None:
            raise DpsynthError(f"--balance-file applies to table models; for images use --balance {schema.label}")
        if not balance:
            return False
        from dpsynth.balance import parse_balance_columns

        names = parse_balance_columns(balance)
        if names != (schema.label,):
            raise DpsynthError(f"--balance: images balance on their label '{schema.label}' only, got {','.join(names)}")
        if conditions:
            raise DpsynthError("--condition cannot be combined with --balance")
        return True

    # ---- evaluate -------------------------------------------------------------------------
    def evaluate_run(self, loaded, *, run=None, synthetic=None, n=None, seed=0, shadow_models=0, config_path=None,
                     report_dir=None, include_real_images=False, cnn_epochs: int = 10,
                     cnn_repeats: int = 3, cnn_min_steps: int | None = None) -> EvaluationResult:
        """CNN TSTR vs TRTR, domain FID, PRDC, attacks, grids. The report is internal (default
        ``internal_eval/<run name>/`` beside the run); real images only with ``include_real_images``."""
        from dpsynth.data.images import load_image_source
        from dpsynth.metrics.image import evaluate_images, save_image_grid
        from dpsynth.reports.image_report import write_image_report
        from dpsynth.reports.internal import check_outside_runs, default_internal_dir

        splits, _, _ = self.recorded_splits(loaded)
        rng = np.random.default_rng(seed)
        if synthetic is not None:
            syn = load_image_source(synthetic, schema=loaded.schema)
        else:
            with torch_threads(1):
                syn = loaded.generator.sample(n or min(len(splits.train), 2000), rng=rng).to_image_data()
        start = time.perf_counter()
        with torch_threads(1):
            metrics = evaluate_images(splits.train, splits.holdout, splits.test, syn, classes=loaded.schema.classes,
                                      rng=rng, cnn_epochs=cnn_epochs, cnn_repeats=cnn_repeats,
                                      **({} if cnn_min_steps is None else {"cnn_min_steps": cnn_min_steps}))
        seconds = time.perf_counter() - start
        results = {"meta": {"modality": "image", "evaluate_seconds": round(seconds, 2), "n_synthetic": len(syn),
                            "n_train": len(splits.train)},
                   "metrics": {k: v.to_dict() for k, v in metrics.items()}, "ledger": loaded.ledger.to_dict()}
        report_dir = check_outside_runs(default_internal_dir(loaded.path) if report_dir is None else report_dir)
        grid = save_image_grid(syn.images, report_dir / "synthetic_grid.png", labels=syn.labels)
        grids = {"synthetic": grid}
        if include_real_images:
            grids["real (test split)"] = save_image_grid(splits.test.images, report_dir / "real_grid.png",
                                                         labels=splits.test.labels)
        files = write_image_report(report_dir, results, grids=grids,
                                   title=f"{loaded.generator.name} on {Path(loaded.run['data']).name}",
                                   synthetic=syn, real=splits.test if include_real_images else None,
                                   classes=loaded.schema.classes)
        return EvaluationResult(results=results, report_files=files, seconds=seconds)

    def check_output_name(self, output) -> None:
        return None  # .npz, or a folder of PNGs + labels.csv

    def terminal_summary(self, results: dict, *, color: bool) -> str:
        """The report's verdict sentence first, every metric, then the honest utility block
        (verdict vs the majority class, balanced accuracy of both CNNs and the baseline, per-class
        recall): a bare accuracy hides a CNN that predicts one class for every image."""
        from dpsynth.reports.image_report import image_verdict

        lines = [image_verdict(results)[1]]
        lines += [f"{name:32s} {m['value']:.4f}" if isinstance(m["value"], float) else f"{name:32s} {m['value']}"
                  for name, m in results["metrics"].items()]
        honest = results["metrics"].get("image_downstream_accuracy", {}).get("breakdown", {}).get("honest")
        if honest:
            bal = " / ".join(f"{honest[side]['balanced_accuracy']:.3f}" for side in ("synthetic", "real", "majority"))
            lines.append(f"utility verdict: {honest['verdict']}" + (f" ({'; '.join(honest['reasons'])})"
                                                                   if honest.get("reasons") else ""))
            lines.append(f"balanced accuracy synthetic / real / majority: {bal}")
            if honest.get("ordinal"):
                lines.append("quadratic-weighted kappa (ordinal grades) synthetic / real: "
                             f"{honest['synthetic']['quadratic_weighted_kappa']:.3f} / "
                             f"{honest['real']['quadratic_weighted_kappa']:.3f}")
            for side in ("synthetic", "real"):
                recall = ", ".join(f"{c} {v:.2f}" for c, v in honest[side]["per_class_recall"].items())
                lines.append(f"per-class recall, {side}: {recall}")
        lines.append(f"epsilon {results['ledger']['epsilon']} (delta {results['ledger']['delta']})")
        return "\n".join(lines)

    # ---- release --------------------------------------------------------------------------
    def release_summary(self, sample, *, schema):
        from dpsynth.reports.release_report import image_sample_summary

        return image_sample_summary(sample, schema)

    def write_release_sample(self, sample, *, rows: int, folder: Path, synthetic_format: str | None) -> Path:
        path = folder / "synthetic.npz"
        type(sample)(sample.images[:rows], sample.labels[:rows], sample.schema, sample.generator,
                     sample.info).save_npz(path)
        return path

    def scan_release(self, bundle: Path, loaded) -> dict:
        """Real training images in the bundle's image arrays."""
        from dpsynth.privacy.artifact_scan import scan_for_images

        data = loaded.run.get("data")
        try:
            splits, _, _ = self.recorded_splits(loaded)
            findings = scan_for_images(bundle, splits.train.images, schema=loaded.schema)
            return {"status": f"scanned for the {len(splits.train)} real training images", "findings": findings}
        except (DpsynthError, OSError, TypeError) as exc:
            return scan_not_run(data, exc)
