"""The CLI end to end on images: train, generate (.npz and PNG folder, conditional), evaluate."""

import json

import numpy as np
from click.testing import CliRunner

from dpsynth.cli import main
from dpsynth.privacy.ledger import Ledger


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_image_cli_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    # a tiny stand-in with BreastMNIST's shape and keys (uses the built-in breastmnist schema)
    arrays = {}
    for split, n in (("train", 96), ("val", 24), ("test", 24)):
        labels = rng.integers(0, 2, (n, 1)).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * 80 + labels[:, :, None] * 120).astype(np.uint8)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    np.savez(tmp_path / "breastmnist.npz", **arrays)
    (tmp_path / "tiny.yaml").write_text("generator: dp-gan-image\nprivacy: {epsilon: 10}\nparams: {epochs: 1, batch_size: 32}\n")
    out = run("train", "--data", tmp_path / "breastmnist.npz", "--config", tmp_path / "tiny.yaml", "--out", tmp_path / "run")
    assert "image discriminator DP-SGD" in out
    assert Ledger.load(tmp_path / "run" / "ledger.json").epsilon() <= 10.0
    run("generate", "--model", tmp_path / "run", "-n", 12, "-o", tmp_path / "syn.npz", "--condition", "label=1")
    with np.load(tmp_path / "syn.npz") as z:
        assert z["train_images"].shape == (12, 28, 28) and (z["train_labels"] == 1).all()
    run("generate", "--model", tmp_path / "run", "-n", 5, "-o", tmp_path / "pngs", "--format", "png")
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 5 and (tmp_path / "pngs" / "labels.csv").is_file()
    out = run("evaluate", "--run", tmp_path / "run")
    assert "image_domain_fid" in out and "image_dcr_attack_auroc" in out
    for name in ("report.json", "report.md", "report.html", "synthetic_grid.png"):
        assert (tmp_path / "run" / "report" / name).is_file()
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    util = report["metrics"]["image_downstream_accuracy"]["breakdown"]
    assert util["repeats"] == 3 and len(util["synthetic_accuracy_repeats"]) == 3
    assert "Downstream CNN on the real test split (mean of 3 CNN(s) per side)" in (
        tmp_path / "run" / "report" / "report.md").read_text()
