"""Sweeps end to end (resumable, report, non-private reference), the rebalanced release and the
audit command."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from dpsynth import api
from dpsynth.balance import balanced_frame, cell_counts, equal_cells
from dpsynth.cli import main
from dpsynth.errors import DpsynthError
from dpsynth.generators.tabular.marginal.independent import IndependentMarginals

REPO = Path(__file__).resolve().parents[2]
TINY_SWEEP = REPO / "configs" / "sweep_tiny.yaml"


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _files(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    result = run("sweep", "--config", TINY_SWEEP, "--out", out)
    assert "4 computed" in result.output
    return out


def test_sweep_writes_cells_and_report(swept):
    report = json.loads((swept / "sweep.json").read_text())
    assert {c["status"] for c in report["cells"]} == {"ok"}
    rows = {(r["label"], r["release"], r["epsilon"]) for r in report["summary"]}
    assert ("dp-gan", "model", "inf") in rows and ("independent", "balanced", "1") in rows
    for r in report["summary"]:
        assert 0 < r["tstr_auroc"] < 1 and r["min_representation_ratio"] is not None and r["attack_auroc"] > 0
    cell = json.loads((swept / "cells" / "dp-gan" / "eps=1" / "seed=0" / "cell.json").read_text())
    card = cell["privacy_card"]
    assert card["accountant"] == "rdp" and card["delta"] == 1e-5 and 0.9 < card["epsilon"] <= 1.0
    sgd = card["dp_sgd"][0]
    assert sgd["clip_norm"] == 1.0 and sgd["noise_multiplier"] > 0 and 0 < sgd["sample_rate"] < 1 and sgd["steps"] > 0
    assert card["preprocessing_epsilon"] > 0
    inf_cell = json.loads((swept / "cells" / "dp-gan" / "eps=inf" / "seed=0" / "cell.json").read_text())
    assert inf_cell["non_private"] and inf_cell["privacy_card"]["epsilon"] == "inf"
    html = (swept / "sweep.html").read_text()
    assert html.count("data:image/png;base64") >= 3 and "Privacy-fairness" in html and "Privacy-utility" in html
    assert "Privacy card of every run" in (swept / "sweep.md").read_text()


def test_killed_sweep_recomputes_only_the_missing_cell(swept):
    lost = swept / "cells" / "independent" / "eps=inf" / "seed=0"
    before = {k: v for k, v in _files(swept / "cells").items() if not k.startswith("independent/eps=inf/")}
    ledgers = {k: v[1] for k, v in before.items() if k.endswith("ledger.json")}
    # a killed run: one cell gone, another left half-written (no cell.json)
    import shutil

    shutil.rmtree(lost)
    partial = swept / "cells" / "independent" / "eps=1" / "seed=0"
    partial_files = {k: v for k, v in before.items() if k.startswith("independent/eps=1/")}
    (partial / "cell.json").unlink()
    before = {k: v for k, v in before.items() if not k.startswith("independent/eps=1/")}
    result = run("sweep", "--config", TINY_SWEEP, "--out", swept)
    assert "2 computed, 2 already finished" in result.output
    after = _files(swept / "cells")
    for name, (mtime, content) in before.items():
        assert after[name] == (mtime, content), f"{name} was touched"
    assert (lost / "cell.json").is_file() and (partial / "cell.json").is_file()
    assert {k for k in after if k.startswith("independent/eps=1/")} == set(partial_files)
    for name, content in ledgers.items():  # no ledger charged again
        assert json.loads(after[name][1]) == json.loads(content)
    assert len(json.loads((swept / "sweep.json").read_text())["cells"]) == 4


def test_sweep_refuses_a_changed_config(swept, tmp_path):
    raw = yaml.safe_load(TINY_SWEEP.read_text())
    raw["n_synthetic"] = 300
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = run("sweep", "--config", path, "--out", swept, ok=False)
    assert result.exit_code == 2 and "other settings" in result.output and "Traceback" not in result.output


def test_generator_without_non_private_reference_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(IndependentMarginals, "supports_non_private", False, raising=False)
    cfg = {"data": "actg175", "epsilons": ["inf"], "seeds": [0], "generators": [{"name": "independent"}]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = api.sweep(config=path, out=tmp_path / "out")
    assert result.counts["skipped"] == 1
    assert "no non-private reference" in result.records[0]["message"]


def test_sweep_config_errors_are_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: actg175\ngenerators: [{name: dp-gan, params: {epochz: 1}}]\n")
    result = run("sweep", "--config", path, ok=False)
    assert result.exit_code == 2 and result.output.startswith("error:") and "epochz" in result.output
    path.write_text("data: actg175\nepsilons: [0]\ngenerators: [independent]\n")
    assert "epsilon must be > 0" in run("sweep", "--config", path, ok=False).output


# ---- rebalanced release -----------------------------------------------------------------------------
def test_balance_gives_equal_cell_counts(swept, tmp_path):
    model = swept / "cells" / "dp-gan" / "eps=1" / "seed=0" / "run"
    out = tmp_path / "balanced.csv"
    result = run("generate", "--model", model, "-n", 400, "-o", out, "--balance", "race,gender", "--seed", 2)
    assert "rebalanced release" in result.output
    frame = pd.read_csv(out)
    assert len(frame) == 400
    assert frame.groupby(["race", "gender"]).size().tolist() == [100, 100, 100, 100]
    target = tmp_path / "target.yaml"
    target.write_text(yaml.safe_dump({"cells": [{"race": 0, "share": 3}, {"race": 1, "share": 1}]}))
    run("generate", "--model", swept / "cells" / "independent" / "eps=1" / "seed=0" / "run", "-n", 200,
        "-o", tmp_path / "t.parquet", "--balance-file", target)
    assert pd.read_parquet(tmp_path / "t.parquet")["race"].value_counts().to_dict() == {0: 150, 1: 50}
    bad = run("generate", "--model", model, "-n", 10, "-o", tmp_path / "x.csv", "--balance", "age", ok=False)
    assert bad.exit_code == 2 and "numeric" in bad.output


def test_unreachable_cell_is_a_clear_error(actg):
    schema = actg[0]

    class NoMinority:
        name = "no-minority"

        def sample(self, n, *, conditions=None, rng):
            if conditions.get("race") == 1:
                raise DpsynthError("the condition is too rare for this model")
            raise AssertionError("not reached")

    with pytest.raises(DpsynthError, match="cell race=1, gender=0 cannot be generated"):
        balanced_frame(NoMinority(), 8, equal_cells(schema, ["race", "gender"])[2:], rng=np.random.default_rng(0))
    assert cell_counts(10, [0.25] * 4) == [3, 3, 2, 2]


# ---- audit command ---------------------------------------------------------------------------------
def test_audit_command(swept, tmp_path):
    out = tmp_path / "audit.json"
    result = run("audit", "--run", swept / "cells" / "dp-gan" / "eps=1" / "seed=0" / "run", "--canaries", 200,
                 "--out", out)
    assert "empirical epsilon lower bound" in result.output and "consistent with the claim" in result.output
    saved = json.loads(out.read_text())
    assert saved["method"] == "white-box" and saved["epsilon_lower_bound"] < saved["claimed_epsilon"]


def test_sweep_audit_option(tmp_path):
    cfg = {"data": "actg175", "epsilons": [1], "seeds": [0], "generators": [{"name": "independent"}],
           "audit": {"canaries": 100}, "evaluation": {"areas": ["utility"], "utility": {"folds": 2}}}
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = api.sweep(config=path, out=tmp_path / "out")
    audit = result.records[0]["audit"]
    assert audit["method"] == "black-box" and audit["epsilon_lower_bound"] <= audit["claimed_epsilon"]
    assert (tmp_path / "out" / "cells" / "independent" / "eps=1" / "seed=0" / "audit.json").is_file()
    assert "Privacy audit" in (tmp_path / "out" / "sweep.html").read_text()
