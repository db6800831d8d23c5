"""A new user finds image support (issue 12): `datasets` lists the image schemas, `train --help`
names the image inputs, `pretrain` then `train --init` runs end to end, bad input is one line."""

import json

import numpy as np
from click.testing import CliRunner

from dpsynth.cli import main
from dpsynth.privacy.ledger import Ledger


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_datasets_and_help_show_image_inputs():
    out = invoke("datasets").output
    for name in ("pneumoniamnist", "breastmnist", "retinamnist"):
        assert f"{name}: image schema, 28x28" in out
    assert "classes: 0, 1, 2, 3, 4" in out
    assert "height: 28" in invoke("datasets", "retinamnist").output
    help_text = " ".join(invoke("train", "--help").output.split())
    for words in (".npz", "PNG/JPEG + labels.csv", "DICOM folder", "--init", "dp-diffusion-image --epsilon 10"):
        assert words in help_text, words


def test_pretrain_then_fine_tune_from_the_cli(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "retinamnist.npz", train_images=rng.integers(0, 256, (24, 28, 28, 3), dtype=np.uint8),
             train_labels=rng.integers(0, 5, (24, 1)))
    arrays = {}
    for split, n in (("train", 40), ("val", 12), ("test", 12)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1)).astype(np.uint8)
    np.savez(tmp_path / "breastmnist.npz", **arrays)
    (tmp_path / "tiny.yaml").write_text(
        "generator: dp-diffusion-image\nprivacy: {epsilon: 10}\nparams: {block_out_channels: [8, 8], norm_num_groups: 4,"
        " num_train_timesteps: 50, sample_steps: 2, steps: 2, batch_size: 8, noise_multiplicity: 1, device: cpu}\n")
    bad = invoke("pretrain", "--public", tmp_path / "retinamnist.npz", "--shape", "28x28", "--out", tmp_path / "x")
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1 and "CxHxW" in bad.output
    ckpt = tmp_path / "pre"
    out = invoke("pretrain", "--public", tmp_path / "retinamnist.npz", "--shape", "1x28x28", "--steps", 2,
                 "--batch-size", 4, "--config", tmp_path / "tiny.yaml", "--out", ckpt)
    assert out.exit_code == 0, out.output
    assert json.loads((ckpt / "pretrain.json").read_text())["sources"][0]["licence"] == "CC BY 4.0"
    out = invoke("train", "--data", tmp_path / "breastmnist.npz", "--config", tmp_path / "tiny.yaml", "--init", ckpt,
                 "--out", tmp_path / "run")
    assert out.exit_code == 0, out.output
    ledger = Ledger.load(tmp_path / "run" / "ledger.json")
    assert [e.mechanism for e in ledger.entries].count("public") == 1 and ledger.epsilon() <= 10.0


def test_help_example_with_init_keeps_its_line_break():
    """The docstring's ``\\`` must reach click: a bare backslash-newline in a normal string literal
    joins the two lines, and the help showed '--epsilon 10           --init ...' on one line."""
    lines = [line.strip() for line in invoke("train", "--help").output.splitlines()]
    assert any(line.startswith("--init models/pretrained_dp-diffusion-image") for line in lines), lines
    assert any(line.startswith("dpsynth train --data breastmnist.npz") and line.endswith("\\") for line in lines)


def test_datasets_says_a_template_schema_is_a_template():
    """medmnist_grey28 is a template with no data set behind it: the listing must not tell a new
    user to pass --data medmnist_grey28.npz, but how to copy it into their own --schema."""
    out = invoke("datasets").output
    assert "--data medmnist_grey28.npz" not in out
    assert "dpsynth datasets medmnist_grey28 > my_schema.yaml" in out
    assert "--data pneumoniamnist.npz" in out


def test_public_autoencoder_then_latent_training_and_generation_from_the_cli(tmp_path):
    """`pretrain --generator autoencoder`, `train --autoencoder`, then `generate` from the run alone
    (the saved model carries the public decoder): images at the private set's size."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "retinamnist.npz", train_images=rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8),
             train_labels=rng.integers(0, 5, (24, 1)))
    arrays = {f"{split}_images": rng.integers(0, 256, (n, 16, 16), dtype=np.uint8) for split, n in (("train", 40),)}
    arrays["train_labels"] = rng.integers(0, 2, (40, 1)).astype(np.uint8)
    np.savez(tmp_path / "scans16.npz", **arrays)
    (tmp_path / "scans16.yaml").write_text("modality: image\nname: scans16\nheight: 16\nwidth: 16\nchannels: 1\nlow: 0\n"
                                           "high: 255\nlabel: label\nclasses: [normal, abnormal]\n")
    (tmp_path / "tiny.yaml").write_text(
        "generator: dp-diffusion-image\nprivacy: {epsilon: 10}\nparams: {block_out_channels: [8, 8], norm_num_groups: 4,"
        " num_train_timesteps: 50, sample_steps: 2, steps: 2, batch_size: 8, noise_multiplicity: 1, device: cpu}\n")
    ae = tmp_path / "ae"
    out = invoke("pretrain", "--generator", "autoencoder", "--public", tmp_path / "retinamnist.npz", "--shape", "1x16x16",
                 "--steps", 2, "--batch-size", 4, "--out", ae)
    assert out.exit_code == 0 and (ae / "reconstructions.png").is_file(), out.output
    out = invoke("train", "--data", tmp_path / "scans16.npz", "--schema", tmp_path / "scans16.yaml", "--config",
                 tmp_path / "tiny.yaml", "--autoencoder", ae, "--out", tmp_path / "run")
    assert out.exit_code == 0, out.output
    ledger = Ledger.load(tmp_path / "run" / "ledger.json")
    assert [e.mechanism for e in ledger.entries].count("public") == 1 and ledger.epsilon() <= 10.0
    import shutil

    shutil.rmtree(ae)  # generation needs the run only
    out = invoke("generate", "--model", tmp_path / "run", "-n", 5, "-o", tmp_path / "syn.npz")
    assert out.exit_code == 0, out.output
    with np.load(tmp_path / "syn.npz") as syn:
        assert syn["train_images"].shape == (5, 16, 16)


def test_a_64px_pixel_run_on_a_cpu_points_to_the_latent_path(tmp_path):
    """`train` at 64x64 in pixels on a CPU ends with a one-line hint naming `--autoencoder`; 28x28 does not."""
    rng = np.random.default_rng(0)
    tiny = ("generator: dp-diffusion-image\nprivacy: {epsilon: 10}\nparams: {block_out_channels: [8, 8], norm_num_groups:"
            " 4, num_train_timesteps: 50, sample_steps: 2, steps: 2, batch_size: 8, noise_multiplicity: 1,"
            " prior_share: 0, device: cpu}\n")
    (tmp_path / "tiny.yaml").write_text(tiny)
    hints = {}
    for side in (28, 64):
        np.savez(tmp_path / f"scans{side}.npz", train_images=rng.integers(0, 256, (40, side, side), dtype=np.uint8),
                 train_labels=rng.integers(0, 2, (40, 1)).astype(np.uint8))
        (tmp_path / f"scans{side}.yaml").write_text(
            f"modality: image\nname: scans{side}\nheight: {side}\nwidth: {side}\nchannels: 1\nlow: 0\nhigh: 255\n"
            "label: label\nclasses: [normal, abnormal]\n")
        out = invoke("train", "--data", tmp_path / f"scans{side}.npz", "--schema", tmp_path / f"scans{side}.yaml",
                     "--config", tmp_path / "tiny.yaml", "--out", tmp_path / f"run{side}")
        assert out.exit_code == 0, out.output
        hints[side] = [line for line in out.output.splitlines() if line.startswith("hint:")]
    assert hints[28] == [] and len(hints[64]) == 1 and "--autoencoder" in hints[64][0]
