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
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpsynth.artifacts_manifest import MANIFEST, verify_manifest, verify_model_dir, write_manifest
from dpsynth.errors import DpsynthError, PrivacyError

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


@dataclass
class ReleaseResult:
    out: Path
    epsilon: float
    files: dict
    scan: dict
    report_files: dict


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
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DpsynthError(f"{out}: exists and is not empty (use --overwrite)")
    epsilon = verify_model_dir(run, require_manifest=True)
    check_run_files(run)
    if math.isinf(epsilon):
        raise PrivacyError(f"{run / 'ledger.json'}: a NON-PRIVATE reference run (epsilon=inf) cannot be released")
    loaded = load_run(run, require_manifest=True)
    image = loaded.generator.modality == "image"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
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
            if image:
                path = tmp / "synthetic" / "synthetic.npz"
                type(sample)(sample.images[:synthetic_rows], sample.labels[:synthetic_rows], sample.schema,
                             sample.generator, sample.info).save_npz(path)
            else:
                suffix = ".parquet" if synthetic_format == "parquet" else ".csv"
                path = tmp / "synthetic" / f"synthetic{suffix}"
                frame = sample.frame.iloc[:synthetic_rows]
                frame.to_parquet(path, index=False) if suffix == ".parquet" else frame.to_csv(path, index=False)
            files["synthetic"] = path.relative_to(tmp).as_posix()
        report_files = write_release_report(tmp, loaded=loaded, sample=sample, epsilon=epsilon, seed=seed,
                                            synthetic_rows=synthetic_rows)
        write_manifest(tmp, kind="bundle")
        verify_manifest(tmp, allow_unlisted=False)
        scan_result = scan_bundle(tmp, loaded) if scan else {"status": "skipped (--no-scan)", "findings": []}
        if scan_result["findings"]:
            raise PrivacyError(f"{out}: the artifact scan found real data in the bundle: {scan_result['findings'][0]}")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ReleaseResult(out=out, epsilon=epsilon, files={k: out / v for k, v in files.items()}, scan=scan_result,
                         report_files={k: out / Path(v).name for k, v in report_files.items()})


def scan_bundle(bundle: Path, loaded) -> dict:
    """The artifact scanner over a bundle: training rows (tables), exact real statistics (tables),
    real images (images). Needs the run's data; says so when it is not reachable."""
    from dpsynth.privacy.artifact_scan import real_statistics, scan_for_images, scan_for_statistics, scan_run_for_rows

    data = loaded.run.get("data")
    try:
        if loaded.generator.modality == "image":
            from dpsynth.api import resolve_image_splits, run_split

            splits = resolve_image_splits(data, schema_path=Path(loaded.path) / "schema.yaml", split=run_split(loaded))
            findings = scan_for_images(bundle, splits.train.images, schema=loaded.schema)
            return {"status": f"scanned for the {len(splits.train)} real training images", "findings": findings}
        from dpsynth.api import resolve_splits, run_split

        splits, schema = resolve_splits(data, schema_path=Path(loaded.path) / "schema.yaml", split=run_split(loaded))
    except (DpsynthError, OSError, TypeError) as exc:
        return {"status": f"not run: the run's data ({data}) is not reachable here ({str(exc).splitlines()[0]})",
                "findings": []}
    findings = scan_run_for_rows(bundle, splits.train, schema, skip=("synthetic/",))
    stats = real_statistics(splits.train, schema)
    findings += scan_for_statistics(bundle, stats)
    return {"status": f"scanned for the {len(splits.train)} training rows and {len(stats)} exact real statistics",
            "findings": findings}
