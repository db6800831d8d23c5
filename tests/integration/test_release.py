"""What may leave the hospital: evaluate writes its real-data statistics outside the run, the
release bundle holds DP artifacts only, the artifact scanner finds no planted real value in the
run or the bundle (and does find them in the internal evaluation), and the audit says what
budget it used."""

import json
import shutil

import pytest
import yaml
from click.testing import CliRunner

from dpsynth.api import resolve_splits
from dpsynth.artifacts_manifest import verify_manifest
from dpsynth.cli import main
from dpsynth.data.splits import SplitSpec
from dpsynth.privacy.artifact_scan import real_statistics, scan_for_statistics, scan_run_for_rows
from dpsynth.privacy.ledger import Ledger

FAST = {"utility": {"grids": {"logistic_regression": {"C": [1.0]}}}, "survival": {"penalizers": [0.1]},
        "fidelity": {"max_rows": 300}, "privacy": {"max_per_side": 150}}


def cli(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def one_line_error(output, pattern):
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in output, output
    assert pattern in lines[0], lines[0]


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """train -> evaluate (internal) -> release, the README's worked example on ACTG 175."""
    tmp = tmp_path_factory.mktemp("release")
    (tmp / "fast.yaml").write_text(yaml.safe_dump(FAST))
    cli("train", "--data", "actg175", "--generator", "independent", "--epsilon", 1, "--out", tmp / "runs" / "actg")
    before = sorted(p.name for p in (tmp / "runs" / "actg").iterdir())
    out = cli("evaluate", "--run", tmp / "runs" / "actg", "--thresholds", tmp / "fast.yaml")
    assert out.startswith("Fit for release at epsilon=1.00: ")
    release_out = cli("release", tmp / "runs" / "actg", "--out", tmp / "bundle", "--synthetic-rows", 200)
    splits, schema = resolve_splits("actg175", split=SplitSpec(seed=0))
    return {"tmp": tmp, "run": tmp / "runs" / "actg", "internal": tmp / "runs" / "internal_eval" / "actg",
            "bundle": tmp / "bundle", "before": before, "release_out": release_out, "train": splits.train,
            "schema": schema}


def planted_values(train) -> dict:
    """Exact real statistics the internal evaluation does write: subgroup counts and shares."""
    values = {}
    for col in ("race", "gender"):
        for value, count in train[col].astype(int).value_counts().items():
            values[f"n_real({col}={value})"] = int(count)
            values[f"share_real({col}={value})"] = count / len(train)
    return values


def test_evaluate_writes_nothing_into_the_run(flow):
    assert sorted(p.name for p in flow["run"].iterdir()) == flow["before"]
    verify_manifest(flow["run"], allow_unlisted=False)
    for name in ("report.json", "report.md", "report.html"):
        assert (flow["internal"] / name).is_file()
    assert json.loads((flow["internal"] / "report.json").read_text())["notice"].startswith("INTERNAL EVALUATION")
    assert (flow["internal"] / "report.md").read_text().startswith("**INTERNAL EVALUATION")
    page = (flow["internal"] / "report.html").read_text()
    assert "INTERNAL EVALUATION" in page[page.index("<body>"):][:200]  # the page header


def test_planted_real_values_are_in_the_internal_report_only(flow):
    planted = planted_values(flow["train"])
    found_inside = scan_for_statistics(flow["internal"], planted)
    assert {f.split("real statistic ")[1].removesuffix(" found") for f in found_inside
            if f.startswith("report.json")} == set(planted)  # the scanner sees them where they are
    planted |= real_statistics(flow["train"], flow["schema"])
    assert scan_for_statistics(flow["run"], planted, skip=()) == []
    # synthetic/ holds DP samples whose values (ages, CD4 counts) may equal any small integer by chance
    assert scan_for_statistics(flow["bundle"], planted, skip=("synthetic/",)) == []
    assert scan_run_for_rows(flow["run"], flow["train"], flow["schema"]) == []
    assert scan_run_for_rows(flow["bundle"], flow["train"], flow["schema"], skip=("synthetic/",)) == []


def test_release_bundle_holds_dp_artifacts_a_report_and_a_manifest(flow):
    bundle = flow["bundle"]
    assert "findings: 0" in flow["release_out"] and "training rows" in flow["release_out"]
    manifest = verify_manifest(bundle, allow_unlisted=False)
    assert set(manifest["files"]) == {"weights.safetensors", "generator.json", "config.yaml", "schema.yaml",
                                      "ledger.json", "privacy_card.json", "privacy_card.md", "run.json",
                                      "release_report.json", "release_report.md", "release_report.html",
                                      "synthetic/synthetic.csv"}
    assert Ledger.load(bundle / "ledger.json").epsilon() == Ledger.load(flow["run"] / "ledger.json").epsilon()
    assert "fit_seconds" not in json.loads((bundle / "run.json").read_text())
    md = (bundle / "release_report.md").read_text()
    assert md.startswith("**RELEASE REPORT") and "Fit for release at epsilon=1.00: yes" in md
    assert "## Privacy claim" in md and "## Privacy ledger (per mechanism)" in md
    cli("generate", "--model", bundle, "-n", 10, "-o", flow["tmp"] / "from_bundle.csv")


def test_release_refuses_what_is_not_dp(flow, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(flow["run"], run)
    shutil.copytree(flow["internal"], run / "report")  # an evaluation copied into the run
    out = cli("release", run, "--out", tmp_path / "b", code=2)
    one_line_error(out, "report")
    assert "not DP" in out and not (tmp_path / "b").exists()
    shutil.rmtree(run / "report")
    raw = json.loads((run / "ledger.json").read_text())
    raw["entries"][0]["noise_multiplier"] = 1e4
    (run / "ledger.json").write_text(json.dumps(raw))
    one_line_error(cli("release", run, "--out", tmp_path / "b", code=2), "ledger.json")
    assert not (tmp_path / "b").exists()


def test_internal_out_inside_a_run_is_refused(flow):
    out = cli("evaluate", "--run", flow["run"], "--internal-out", flow["run"] / "report", code=2)
    one_line_error(out, "may not be written inside the model directory")


@pytest.mark.parametrize("split", ["holdout", "train"])
def test_audit_says_which_budget_it_used(flow, tmp_path, split):
    # the flow fixture is shared by both cases: the second audit replaces the first one's result
    out = cli("audit", "--run", flow["run"], "--canaries", 40, "--on", split, "--overwrite")
    saved = json.loads((flow["internal"] / "audit.json").read_text())
    assert saved["audit_data"] == split and f"audit budget: {saved['audit_budget']}" in out
    run_eps = Ledger.load(flow["run"] / "ledger.json").epsilon()
    assert saved["audit_epsilon"] == pytest.approx(run_eps, rel=1e-6)  # the retrain spends the same budget again
    if split == "holdout":
        assert "not in the released model's training split" in saved["audit_budget"]
    else:
        assert f"own epsilon={saved['audit_epsilon']:.3g}" in saved["audit_budget"]
    assert not (flow["run"] / "audit.json").exists()


def test_release_overwrite_replaces_a_bundle_but_never_a_foreign_folder(flow, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(flow["bundle"], bundle)
    one_line_error(cli("release", flow["run"], "--out", bundle, code=2), "pass --overwrite")
    cli("release", flow["run"], "--out", bundle, "--overwrite")  # a bundle dpsynth wrote: replaced
    verify_manifest(bundle, allow_unlisted=False)
    home = tmp_path / "home"  # a user's folder: --overwrite must not delete it
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    one_line_error(cli("release", flow["run"], "--out", home, "--overwrite", code=2), "not a dpsynth release bundle")
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
