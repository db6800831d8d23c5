"""evaluation/resize_medmnist.py + bench_images.load_benchmark_splits: a 28px set resized to 64px by
the fixed rule is read back with the schema written beside it (every split, classes unchanged)."""

from __future__ import annotations

import numpy as np

from evaluation.bench_images import load_benchmark_splits
from evaluation.resize_medmnist import main as resize_main


def test_a_resized_set_is_benchmarked_at_its_new_size(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "breastmnist.npz"  # BreastMNIST's layout: grey 28x28, labels (N, 1)
    arrays = {}
    for split, n in (("train", 12), ("val", 4), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1)).astype(np.uint8)
    np.savez(src, **arrays)
    out = tmp_path / "x64"
    assert resize_main([str(src), "--size", "64", "--out", str(out)]) == 0
    train, holdout, test = load_benchmark_splits("breastmnist64", out)
    assert train.images.shape == (12, 1, 64, 64) and holdout.images.shape == (4, 1, 64, 64)
    assert test.images.shape == (6, 1, 64, 64)
    assert train.schema.height == 64 and train.schema.classes == ("malignant", "normal_or_benign")
    assert "resized to 64x64" in train.schema.description
    np.testing.assert_array_equal(test.labels, arrays["test_labels"][:, 0])
    # a constant image stays constant through the resize (a fixed rule, no statistic of the data)
    flat = tmp_path / "flat" / "breastmnist.npz"
    flat.parent.mkdir()
    np.savez(flat, **{**arrays, "train_images": np.full((12, 28, 28), 200, np.uint8)})
    resize_main([str(flat), "--size", "64", "--out", str(tmp_path / "flat64")])
    train64, _, _ = load_benchmark_splits("breastmnist64", tmp_path / "flat64")
    assert np.allclose(train64.images, train64.images.flat[0])
