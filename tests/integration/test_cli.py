"""The CLI end to end in a temp dir (train, generate, evaluate) and its one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from dpsynth.cli import main
from dpsynth.config import RunConfig, load_config

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "configs" / "dp_gan_tiny.yaml")


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def assert_one_line_error(result, pattern):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    import re

    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    result = run("train", "--data", "actg175", "--config", TINY, "--epsilon", 1, "--out", tmp / "run")
    assert "epsilon=" in result.output and "accountant=rdp" in result.output
    return tmp


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "dpsynth.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("datasets", "train", "generate", "evaluate"):
        assert command in out.stdout
    assert "--epsilon" in run("train", "--help").output


def test_datasets_lists_actg175():
    out = run("datasets").output
    assert "actg175" in out and "2139" in out
    assert "name: actg175" in run("datasets", "actg175").output


def test_train_writes_a_complete_run(trained):
    run_dir = trained / "run"
    for name in ("weights.safetensors", "generator.json", "schema.yaml", "ledger.json", "config.yaml",
                 "privacy_card.md", "privacy_card.json", "run.json"):
        assert (run_dir / name).is_file(), name
    card = json.loads((run_dir / "privacy_card.json").read_text())
    assert 0.9 < card["epsilon"] <= 1.0 and card["accountant"] == "rdp" and card["delta"] == 1e-5
    sgd = card["dp_sgd"][0]
    assert sgd["noise_multiplier"] > 0 and sgd["steps"] > 0 and sgd["max_grad_norm"] == 1.0
    assert json.loads((run_dir / "run.json").read_text())["split"]["seed"] == 0


def test_generate_and_evaluate(trained):
    out = trained / "synth.parquet"
    result = run("generate", "--model", trained / "run", "-n", 500, "-o", out, "--seed", 3)
    assert "wrote 500" in result.output
    frame = pd.read_parquet(out)
    assert len(frame) == 500 and "cens" in frame.columns
    csv = trained / "cond.csv"
    run("generate", "--model", trained / "run", "-n", 50, "-o", csv, "--condition", "gender=0")
    assert (pd.read_csv(csv)["gender"] == 0).all()
    ev = run("evaluate", "--run", trained / "run", "--synthetic", out, "--target", "cens", "--quick", "--json").output
    numbers = json.loads(ev)
    assert 0 <= numbers["utility"]["breakdown"]["tstr"]["selected"]["auroc"] <= 1
    assert "TSTR AUROC" in run("evaluate", "--real", "actg175", "--synthetic", out, "--target", "cens", "--quick").output


def test_one_shot_generate(tmp_path):
    out = tmp_path / "s.csv"
    result = run("generate", "--data", "actg175", "--config", TINY, "--epsilon", 1, "-n", 300, "-o", out)
    assert "TSTR AUROC" in result.output and "TRTR AUROC" in result.output and "wrote 300" in result.output
    assert len(pd.read_csv(out)) == 300


@pytest.fixture
def user_files(tmp_path, actg):
    schema, raw, _ = actg
    small = raw.iloc[:200]
    small.to_csv(tmp_path / "ok.csv", index=False)
    schema.save(tmp_path / "schema.yaml")
    return tmp_path, small, schema


def _bad(args, pattern, out_path=None):
    result = run(*args, ok=False)
    assert_one_line_error(result, pattern)
    if out_path is not None:
        assert not Path(out_path).exists(), "partial output left behind"


def test_missing_file(tmp_path):
    _bad(["train", "--data", tmp_path / "nope.csv", "--schema", tmp_path / "s.yaml", "--out", tmp_path / "r"],
         "data file not found: .*nope.csv", tmp_path / "r")


def test_unreadable_csv(user_files):
    tmp, _, _ = user_files
    (tmp / "bad.csv").write_bytes(b"\x00\xff\xfe garbage \"unclosed\n1,2\n")
    _bad(["train", "--data", tmp / "bad.csv", "--schema", tmp / "schema.yaml", "--out", tmp / "r"], "bad.csv", tmp / "r")


def test_unknown_column_in_schema(user_files):
    tmp, _, schema = user_files
    raw = yaml.safe_load((tmp / "schema.yaml").read_text())
    raw["columns"].append({"name": "ghost", "kind": "binary", "categories": [0, 1]})
    (tmp / "ghost.yaml").write_text(yaml.safe_dump(raw))
    _bad(["train", "--data", tmp / "ok.csv", "--schema", tmp / "ghost.yaml", "--out", tmp / "r"], "ghost", tmp / "r")


def test_value_outside_domain(user_files):
    tmp, small, _ = user_files
    small.assign(age=small["age"].where(small.index != 3, 150)).to_csv(tmp / "old.csv", index=False)
    _bad(["train", "--data", tmp / "old.csv", "--schema", tmp / "schema.yaml", "--out", tmp / "r"],
         "column 'age'.*outside the declared domain", tmp / "r")


def test_missing_values_not_allowed(user_files):
    tmp, small, _ = user_files
    small.assign(wtkg=small["wtkg"].where(small.index != 5)).to_csv(tmp / "na.csv", index=False)
    _bad(["train", "--data", tmp / "na.csv", "--schema", tmp / "schema.yaml", "--out", tmp / "r"],
         "column 'wtkg' has 1 missing value", tmp / "r")


def test_file_without_schema_is_refused(user_files):
    tmp, _, _ = user_files
    _bad(["train", "--data", tmp / "ok.csv", "--out", tmp / "r"], "no schema given", tmp / "r")


@pytest.mark.parametrize("epsilon", [0, -1])
def test_epsilon_must_be_positive(tmp_path, epsilon):
    result = run("train", "--data", "actg175", "--epsilon", epsilon, "--out", tmp_path / "r", ok=False)
    assert result.exit_code == 2 and "epsilon must be > 0" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_delta_at_or_above_one_over_n(tmp_path):
    _bad(["train", "--data", "actg175", "--config", TINY, "--delta", 0.001, "--out", tmp_path / "r"],
         r"delta=0.001 is >= 1/n", tmp_path / "r")


def test_rows_must_be_positive(trained):
    _bad(["generate", "--model", trained / "run", "-n", 0, "-o", trained / "zero.csv"], "must be > 0",
         trained / "zero.csv")


def test_corrupt_model_dir(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "weights.safetensors").write_bytes(b"not a safetensors file")
    _bad(["generate", "--model", tmp_path / "m", "-n", 5, "-o", tmp_path / "x.csv"], "not a dpsynth model directory",
         tmp_path / "x.csv")


def test_unknown_config_key(tmp_path):
    (tmp_path / "c.yaml").write_text("generator: dp-gan\nepochs: 3\n")
    _bad(["train", "--data", "actg175", "--config", tmp_path / "c.yaml", "--out", tmp_path / "r"],
         r"unknown key\(s\) \['epochs'\]", tmp_path / "r")
    (tmp_path / "p.yaml").write_text("generator: dp-gan\nparams: {epochz: 3}\n")
    _bad(["train", "--data", "actg175", "--config", tmp_path / "p.yaml", "--out", tmp_path / "r"],
         r"unknown parameter\(s\) \['epochz'\]", tmp_path / "r")


def test_defaults_yaml_matches_code_defaults():
    assert load_config(REPO / "configs" / "defaults.yaml").to_dict() == {
        **RunConfig().to_dict(), "description": load_config(REPO / "configs" / "defaults.yaml").description}


def test_full_evaluation_writes_a_report(trained):
    result = run("evaluate", "--run", trained / "run", "--thresholds", REPO / "configs" / "evaluation_thresholds.yaml")
    assert "UTILITY" in result.output and "PRIVACY" in result.output and "SUBGROUPS" in result.output
    report = trained / "internal_eval" / "run"  # an internal evaluation: beside the run, never inside it
    assert not (trained / "run" / "report").exists()
    for name in ("report.json", "report.md", "report.html"):
        assert (report / name).is_file()
    numbers = json.loads((report / "report.json").read_text())
    assert numbers["verdicts"] and "privacy" in numbers
    assert "epsilon" in (report / "report.md").read_text()
