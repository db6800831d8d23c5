"""Every released model under models/ is a release bundle: it matches its manifest, loads, samples
valid rows, keeps its stated budget, and holds no training row and no exact real statistic."""

from pathlib import Path

import numpy as np
import pytest

from dpsynth.artifacts import load_run
from dpsynth.artifacts_manifest import verify_manifest
from dpsynth.data.embedded import get_embedded
from dpsynth.privacy.artifact_scan import real_statistics, scan_for_statistics, scan_run_for_rows

MODELS = Path(__file__).resolve().parents[2] / "models"
RUNS = sorted(p for p in MODELS.iterdir() if (p / "run.json").is_file()) if MODELS.is_dir() else []


@pytest.mark.parametrize("run_dir", RUNS, ids=[p.name for p in RUNS])
def test_released_model_loads_samples_and_keeps_its_budget(run_dir):
    pytest.importorskip("mbi", reason="released marginal models need the extra dpsynth[marginal]")
    manifest = verify_manifest(run_dir, allow_unlisted=False)
    assert manifest["kind"] == "bundle" and "release_report.md" in manifest["files"]
    loaded = load_run(run_dir, require_manifest=True)
    ledger = loaded.ledger
    assert not ledger.non_private and ledger.epsilon() <= ledger.target_epsilon + 1e-9
    frame = loaded.generator.sample(200, rng=np.random.default_rng(0)).frame
    loaded.schema.prepare(frame, source=f"{run_dir.name} sample")  # every value in the public domain
    assert list(frame.columns) == loaded.schema.names
    data = loaded.run.get("data")
    assert data == "actg175", f"add a row scan for {data}"
    ds = get_embedded("actg175")
    real = loaded.schema.prepare(ds.load())
    assert scan_run_for_rows(run_dir, real, loaded.schema) == []
    assert scan_for_statistics(run_dir, real_statistics(real, loaded.schema)) == []
