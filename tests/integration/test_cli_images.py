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
    out = run("generate", "--model", tmp_path / "run", "-n", 13, "-o", tmp_path / "bal.npz", "--balance", "label")
    assert "rebalanced release" in out
    with np.load(tmp_path / "bal.npz") as z:
        assert np.bincount(z["train_labels"][:, 0], minlength=2).tolist() == [7, 6]
    for bad, message in ((("--balance", "sex"), "images balance on their label 'label' only, got sex"),
                         (("--balance", "label", "--condition", "label=1"), "cannot be combined with --balance")):
        result = CliRunner().invoke(main, ["generate", "--model", str(tmp_path / "run"), "-n", "4",
                                           "-o", str(tmp_path / "no.npz"), *bad])
        assert result.exit_code != 0 and message in result.output and not (tmp_path / "no.npz").exists()
    run("generate", "--model", tmp_path / "run", "-n", 5, "-o", tmp_path / "pngs", "--format", "png")
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 5 and (tmp_path / "pngs" / "labels.csv").is_file()
    out = run("evaluate", "--run", tmp_path / "run", "--cnn-steps", 20)  # few CNN steps: the pipeline, not the recipe
    assert "image_domain_fid" in out and "image_dcr_attack_auroc" in out
    internal = tmp_path / "internal_eval" / "run"  # beside the run, never inside it
    for name in ("report.json", "report.md", "report.html", "synthetic_grid.png"):
        assert (internal / name).is_file()
    assert not (tmp_path / "run" / "report").exists() and not (internal / "real_grid.png").exists()
    report = json.loads((internal / "report.json").read_text())
    assert report["notice"].startswith("INTERNAL EVALUATION")
    util = report["metrics"]["image_downstream_accuracy"]["breakdown"]
    assert util["repeats"] == 3 and len(util["synthetic_accuracy_repeats"]) == 3
    test_labels = arrays["test_labels"][:, 0]
    majority = np.bincount(arrays["train_labels"][:, 0]).argmax()
    assert util["majority_accuracy"] == float((test_labels == majority).mean())
    assert 0 <= util["synthetic_balanced_accuracy"] <= 1 and util["majority_balanced_accuracy"] == 0.5
    md = (internal / "report.md").read_text()
    assert md.startswith("**INTERNAL EVALUATION") and "majority-class baseline" in md and "balanced accuracy" in md
    page = (internal / "report.html").read_text()
    assert "Synthetic images, one row per class" in page and "Real test images" not in page

    # the release bundle of an image run holds no real image, and the scanner would see one
    from dpsynth.data.images import load_image_source
    from dpsynth.metrics.image import save_image_grid
    from dpsynth.privacy.artifact_scan import scan_for_images

    out = run("release", tmp_path / "run", "--out", tmp_path / "bundle", "--synthetic-rows", 20)
    assert "findings: 0" in out and "real training images" in out
    train = load_image_source(tmp_path / "breastmnist.npz")
    assert scan_for_images(tmp_path / "run", train.images, schema=train.schema) == []
    assert scan_for_images(internal, train.images, schema=train.schema) == []
    save_image_grid(train.images[:15], tmp_path / "leak" / "grid.png", labels=train.labels[:15])
    shown = sum(min(10, int((train.labels[:15] == c).sum())) for c in (0, 1))
    assert scan_for_images(tmp_path / "leak", train.images, schema=train.schema) == [f"grid.png: {shown} real image(s) found"]


def test_cnn_steps_is_refused_where_it_means_nothing(tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--real", "actg175", "--synthetic", str(tmp_path / "s.csv"),
                                       "--cnn-steps", "10"])
    assert result.exit_code != 0 and "--cnn-steps needs --run" in result.output
    assert not any(tmp_path.iterdir())


def test_dp_merf_image_trains_and_generates_from_the_cli(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, (80, 1)).astype(np.uint8)
    images = (rng.random((80, 28, 28)) * 80 + labels[:, :, None] * 120).astype(np.uint8)
    np.savez(tmp_path / "breastmnist.npz", train_images=images, train_labels=labels)
    (tmp_path / "merf.yaml").write_text("generator: dp-merf-image\nprivacy: {epsilon: 2}\n"
                                        "params: {steps: 5, n_frequencies: 100, generator_channels: 8, device: cpu}\n")
    out = run("train", "--data", tmp_path / "breastmnist.npz", "--config", tmp_path / "merf.yaml", "--out", tmp_path / "run")
    assert "random-feature mean embedding" in out
    ledger = Ledger.load(tmp_path / "run" / "ledger.json")
    assert 2.0 * 0.99 <= ledger.epsilon() <= 2.0
    run("generate", "--model", tmp_path / "run", "-n", 6, "-o", tmp_path / "syn.npz", "--condition", "label=0")
    with np.load(tmp_path / "syn.npz") as z:
        assert z["train_images"].shape == (6, 28, 28) and (z["train_labels"] == 0).all()
