"""Tamper evidence: every run carries a manifest of SHA-256 hashes; generate refuses a model
whose ledger, weights or config changed, and the ledger's epsilon is recomputed from its entries."""

import json
import shutil

import pytest
from click.testing import CliRunner

from dpsynth.artifacts_manifest import MANIFEST, file_sha256, verify_manifest, verify_model_dir, write_manifest
from dpsynth.cli import main
from dpsynth.errors import DpsynthError
from dpsynth.privacy.ledger import Ledger


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_refusal(result, pattern):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    assert pattern in lines[0], lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("manifest") / "run"
    result = cli("train", "--data", "actg175", "--generator", "independent", "--epsilon", 1, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def copy(run_dir, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(run_dir, dst)
    return dst


def test_a_run_lists_every_file_with_its_hash(run_dir):
    manifest = json.loads((run_dir / MANIFEST).read_text())
    files = {p.name for p in run_dir.iterdir() if p.name != MANIFEST}
    assert set(manifest["files"]) == files
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == file_sha256(run_dir / name) and entry["bytes"] == (run_dir / name).stat().st_size
    assert verify_model_dir(run_dir) == pytest.approx(Ledger.load(run_dir / "ledger.json").epsilon())


def test_generate_accepts_the_untouched_run(run_dir, tmp_path):
    result = cli("generate", "--model", run_dir, "-n", 20, "-o", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output


def _edit_ledger(path, edit):
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw, indent=2))


def _more_noise(raw):
    entry = next(e for e in raw["entries"] if e.get("noise_multiplier") is not None or "rho" in e)
    if "noise_multiplier" in entry:
        entry["noise_multiplier"] = 1e4
    else:
        entry["rho"] = entry["rho"] / 1e4


@pytest.mark.parametrize("edit", ["sigma", "delete-entry", "epsilon-field"])
def test_generate_refuses_an_edited_ledger(copy, tmp_path, edit):
    def change(raw):
        if edit == "sigma":
            _more_noise(raw)
        elif edit == "delete-entry":
            raw["entries"].pop()
        else:
            raw["epsilon"] = 0.0084

    _edit_ledger(copy / "ledger.json", change)
    one_line_refusal(cli("generate", "--model", copy, "-n", 20, "-o", tmp_path / "s.csv"), "ledger.json")
    assert not (tmp_path / "s.csv").exists()


def test_ledger_edit_with_a_recomputed_manifest_is_still_caught(copy, tmp_path):
    """Rewriting the manifest after editing the ledger does not help: the weights carry the
    ledger's hash, and the recorded epsilon is checked against the entries."""
    _edit_ledger(copy / "ledger.json", _more_noise)
    write_manifest(copy)
    one_line_refusal(cli("generate", "--model", copy, "-n", 20, "-o", tmp_path / "s.csv"), "ledger.json")
    # the recorded epsilon recomputed: the privacy card still says the old epsilon
    ledger = Ledger.load(copy / "ledger.json")
    ledger.save(copy / "ledger.json")
    write_manifest(copy)
    one_line_refusal(cli("generate", "--model", copy, "-n", 20, "-o", tmp_path / "s.csv"), "privacy_card.json")
    # and with the card rewritten too, the ledger hash bound into the weights still differs
    _edit_ledger(copy / "privacy_card.json", lambda card: card.update(epsilon=ledger.epsilon()))
    write_manifest(copy)
    one_line_refusal(cli("generate", "--model", copy, "-n", 20, "-o", tmp_path / "s.csv"), "weights.safetensors")


@pytest.mark.parametrize("name", ["weights.safetensors", "config.yaml", "generator.json", "schema.yaml"])
def test_generate_refuses_changed_weights_or_config(copy, tmp_path, name):
    path = copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    one_line_refusal(cli("generate", "--model", copy, "-n", 20, "-o", tmp_path / "s.csv"), name)


def test_generate_refuses_a_model_without_manifest(copy, tmp_path):
    (copy / MANIFEST).unlink()
    one_line_refusal(cli("generate", "--model", copy, "-n", 20, "-o", tmp_path / "s.csv"), MANIFEST)


def test_unlisted_files_are_refused_only_when_asked(copy):
    (copy / "notes.txt").write_text("hello")
    verify_manifest(copy)
    with pytest.raises(DpsynthError, match="notes.txt: not listed"):
        verify_manifest(copy, allow_unlisted=False)
