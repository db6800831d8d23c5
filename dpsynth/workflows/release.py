"""``dpsynth release RUN --out BUNDLE``: the one thing that may leave the hospital.

A release bundle holds only DP outputs and public facts: the weights, the generator's
hyper-parameters, the config, the public schema, the ledger, the privacy card, optionally
synthetic data sampled from the model, a release report computed from those alone, and a
manifest of SHA-256 hashes of every file. Building one

1. verifies the run (manifest, ledger epsilon recomputed from its entries, privacy card,
   ledger hash in the weights) and refuses a non-private run;
2. refuses, with one line naming the file, anything in the run that is not a known DP
   artifact (an evaluation report, an audit result, a copy of the data, ...);
3. copies the artifacts into a temporary sibling, samples the optional synthetic data,
   writes the release report and the manifest, and checks the bundle against the manifest;
4. runs the artifact scanner (training rows in weights and text files; exact real
   statistics in text files; real images in image arrays) when the run's data is reachable,
   and refuses the bundle if it finds anything;
5. renames the bundle into place (nothing partial is ever left).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpsynth import modalities
from dpsynth.artifacts_manifest import MANIFEST, verify_manifest, verify_model_dir, write_manifest
from dpsynth.errors import DpsynthError, PrivacyError
from dpsynth.safe_io import atomic_dir, check_output_dir
from dpsynth.release_contents import DP_ARTIFACTS, _public_run_record, check_run_files  # noqa: F401

BUNDLE_MARKERS = (MANIFEST, "ledger.json")  # what marks a folder as a bundle dpsynth wrote (--overwrite may replace it)


@dataclass
class ReleaseResult:
    out: Path
    epsilon: float
    files: dict
    scan: dict
    report_files: dict


def build_release(run: str | Path, out: str | Path, *, synthetic_rows: int = 0, seed: int = 0,
                  summary_rows: int = 2000, overwrite: bool = False, scan: bool = True,
                  synthetic_format: str | None = None) -> ReleaseResult:
    from dpsynth.artifacts import load_run
    from dpsynth.reports.release_report import write_release_report

    run, out = Path(run), Path(out)
    if not run.is_dir():
        raise DpsynthError(f"run directory not found: {run}")
    if synthetic_rows < 0:
        raise DpsynthError(f"--synthetic-rows must be >= 0, got {synthetic_rows}")
    if out.resolve() == run.resolve() or run.resolve() in out.resolve().parents:
        raise DpsynthError(f"{out}: the bundle must be outside the run directory {run}")
    check_output_dir(out, overwrite=overwrite, markers=BUNDLE_MARKERS, what="release bundle")
    epsilon = verify_model_dir(run, require_manifest=True)
    check_run_files(run)
    if math.isinf(epsilon):
        raise PrivacyError(f"{run / 'ledger.json'}: a NON-PRIVATE reference run (epsilon=inf) cannot be released")
    loaded = load_run(run, require_manifest=True)
    modality = modalities.for_run(loaded)
    with atomic_dir(out, overwrite=overwrite, markers=BUNDLE_MARKERS, what="release bundle") as tmp:
        for name in DP_ARTIFACTS:
            if name in (MANIFEST, "run.json") or not (run / name).is_file():
                continue
            shutil.copy2(run / name, tmp / name)
        if (run / "site_ledgers").is_dir():  # federated: every site's ledger travels with the card that lists them
            shutil.copytree(run / "site_ledgers", tmp / "site_ledgers")
        (tmp / "run.json").write_text(json.dumps(_public_run_record(loaded.run), indent=2))
        rng = np.random.default_rng(seed)
        n_summary = max(synthetic_rows, min(summary_rows, max(int(loaded.run.get("n_train") or 0), 500)))
        sample = loaded.generator.sample(n_summary, rng=rng)
        files = {}
        if synthetic_rows > 0:
            (tmp / "synthetic").mkdir()
            path = modality.write_release_sample(sample, rows=synthetic_rows, folder=tmp / "synthetic",
                                                 synthetic_format=synthetic_format)
            files["synthetic"] = path.relative_to(tmp).as_posix()
        report_files = write_release_report(tmp, loaded=loaded, sample=sample,
                                            summary=modality.release_summary(sample, schema=loaded.schema),
                                            epsilon=epsilon, seed=seed,
                                            synthetic_rows=synthetic_rows)
        write_manifest(tmp, kind="bundle")
        verify_manifest(tmp, allow_unlisted=False)
        scan_result = scan_bundle(tmp, loaded) if scan else {"status": "skipped (--no-scan)", "findings": []}
        if scan_result["findings"]:
            raise PrivacyError(f"{out}: the artifact scan found real data in the bundle: {scan_result['findings'][0]}")
    return ReleaseResult(out=out, epsilon=epsilon, files={k: out / v for k, v in files.items()}, scan=scan_result,
                         report_files={k: out / Path(v).name for k, v in report_files.items()})


def scan_bundle(bundle: Path, loaded) -> dict:
    """The artifact scanner over a bundle: training rows (tables), exact real statistics (tables),
    real images (images). Needs the run's data; says so when it is not reachable."""
    return modalities.for_run(loaded).scan_release(bundle, loaded)


def release(*, run: str | Path, out: str | Path, synthetic_rows: int = 0, seed: int = 0, overwrite: bool = False,
            scan: bool = True) -> ReleaseResult:
    """Build a release bundle from a run: DP artifacts only, a release report, a manifest.
    Refuses (one line, naming the file) anything that is not DP."""
    return build_release(run, out, synthetic_rows=synthetic_rows, seed=seed, overwrite=overwrite, scan=scan)
