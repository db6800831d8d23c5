"""Image metrics on tiny generated 8x8 images whose properties are known."""

import numpy as np
import pytest
import torch

from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData
from dpsynth.metrics.image import downstream_utility, evaluate_images, frechet_distance, inception_fid, save_image_grid

torch.set_num_threads(1)
SCHEMA = ImageSchema(height=8, width=8, channels=1, low=0, high=1, classes=("a", "b"))


def _images(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.normal(-0.5 + labels[:, None, None, None] + shift, 0.3, (n, 1, 8, 8)).clip(-1, 1).astype(np.float32)
    return ImageData(x, labels.astype(np.int64), SCHEMA)


def test_evaluate_images_separates_good_from_bad_synthetic():
    train, holdout, test = _images(120, 0), _images(60, 1), _images(60, 2)
    good, bad = _images(120, 3), _images(120, 4, shift=0.8)
    flipped = ImageData(good.images, 1 - good.labels, SCHEMA)
    res_good = evaluate_images(train, holdout, test, good, classes=SCHEMA.classes, rng=np.random.default_rng(0),
                               cnn_epochs=3, cnn_min_steps=0)
    res_bad = evaluate_images(train, holdout, test, bad, classes=SCHEMA.classes, rng=np.random.default_rng(0),
                              cnn_epochs=3, cnn_min_steps=0)
    res_flip = evaluate_images(train, holdout, test, flipped, classes=SCHEMA.classes, rng=np.random.default_rng(0),
                               cnn_epochs=3, cnn_min_steps=0)
    assert res_good["image_domain_fid"].value < res_bad["image_domain_fid"].value
    assert res_good["image_prdc_coverage"].value > res_bad["image_prdc_coverage"].value
    assert res_good["image_downstream_accuracy"].value > 0.8 > res_flip["image_downstream_accuracy"].value
    assert res_good["image_downstream_accuracy"].breakdown["real_accuracy"] > 0.8
    counts = res_good["image_class_counts"].breakdown
    assert counts["a"] + counts["b"] == 120
    for name in ("image_dcr_attack_auroc", "image_domias_attack_auroc"):
        assert 0.0 <= res_good[name].value <= 1.0 and res_good[name].target == 0.5
    assert "image_inception_fid" not in res_good  # skipped without a weights file


def test_downstream_utility_repeats_report_the_mean_of_independent_cnns():
    train, test = _images(120, 0), _images(60, 2)
    noisy = _images(120, 5, shift=0.4)  # a shifted synthetic set: CNN seeds disagree on it
    one, _ = downstream_utility(train, noisy, test, n_classes=2, rng=np.random.default_rng(0), epochs=2, min_steps=0)
    three, _ = downstream_utility(train, noisy, test, n_classes=2, rng=np.random.default_rng(0), epochs=2, repeats=3,
                                  min_steps=0)
    b = three.breakdown
    assert b["repeats"] == 3 and len(b["synthetic_accuracy_repeats"]) == 3 and len(b["real_auroc_repeats"]) == 3
    assert three.value == pytest.approx(np.mean(b["synthetic_accuracy_repeats"]))
    assert b["real_accuracy"] == pytest.approx(np.mean(b["real_accuracy_repeats"]))
    assert b["synthetic_accuracy_std"] == pytest.approx(np.std(b["synthetic_accuracy_repeats"]))
    assert "synthetic_accuracy_repeats" not in one.breakdown and one.breakdown["repeats"] == 1
    with pytest.raises(ValueError, match="repeats"):
        downstream_utility(train, noisy, test, n_classes=2, rng=np.random.default_rng(0), repeats=0)


def test_frechet_distance_zero_for_identical_sets():
    feats = np.random.default_rng(0).normal(size=(50, 4))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(feats, feats + 1.0) == pytest.approx(4.0, rel=1e-3)


class _FakeInception(torch.nn.Module):
    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


def test_inception_fid_uses_a_local_torchscript_file(tmp_path):
    path = tmp_path / "inception.pt"
    with pytest.warns(DeprecationWarning):
        torch.jit.script(_FakeInception()).save(str(path))
    real, syn = _images(40, 0).images, _images(40, 1).images
    result = inception_fid(real, syn, weights=path)
    assert result.name == "image_inception_fid" and result.value >= 0
    assert inception_fid(real, syn, weights=None) is None


def test_image_grid_png(tmp_path):
    from PIL import Image

    data = _images(30, 0)
    path = save_image_grid(data.images, tmp_path / "grid.png", nrow=5, labels=data.labels)
    with Image.open(path) as im:
        assert im.size == (5 * 10 + 2, 2 * 10 + 2) and im.mode == "L"


def test_subgroup_scores_find_the_group_the_synthetic_model_fails():
    """Test images carry sex metadata; a 'synthetic-trained' model that is right for men and wrong
    for women shows a large gap for sex=F only; small groups are listed as too small."""
    import pandas as pd

    from dpsynth.data.schema import Column
    from dpsynth.metrics.image import subgroup_scores

    schema = ImageSchema(height=8, width=8, channels=1, low=0, high=1, classes=("a", "b"),
                         metadata=(Column(name="sex", kind="categorical", categories=("F", "M", "X"),
                                          nullable=True, sensitive=True),))
    rng = np.random.default_rng(0)
    n = 200
    labels = rng.integers(0, 2, n).astype(np.int64)
    sex = np.array(["F"] * 100 + ["M"] * 90 + ["X"] * 10, dtype=object)
    test = ImageData(np.zeros((n, 1, 8, 8), np.float32), labels, schema, pd.DataFrame({"sex": sex}))
    right = np.eye(2)[labels]
    syn = np.where((sex == "F")[:, None], np.eye(2)[1 - labels], right)
    groups = {g["group"]: g for g in subgroup_scores(test, right, syn)}
    assert groups["sex=F"]["accuracy_gap"] == 1.0 and groups["sex=M"]["accuracy_gap"] == 0.0
    assert groups["sex=X"]["status"] == "too small"
    assert subgroup_scores(ImageData(test.images, labels, SCHEMA), right, syn) is None


def test_train_cnn_gives_a_small_set_at_least_min_steps(monkeypatch):
    """A 546-image set got 50 optimizer steps from 10 epochs and its real CNN predicted the
    majority class; ``min_steps`` adds epochs until at least that many steps are taken."""
    import torch

    from dpsynth.metrics import image_cnn

    steps = []

    class CountingAdam(torch.optim.Adam):
        def step(self, *args, **kwargs):
            steps.append(1)
            return super().step(*args, **kwargs)

    monkeypatch.setattr(image_cnn.torch.optim, "Adam", CountingAdam)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(40, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 2, size=40)
    image_cnn.train_cnn(images, labels, n_classes=2, rng=rng, epochs=2, batch_size=16, min_steps=0)
    assert len(steps) == 2 * 3  # 2 epochs x ceil(40 / 16)
    steps.clear()
    image_cnn.train_cnn(images, labels, n_classes=2, rng=rng, epochs=2, batch_size=16, min_steps=20)
    assert len(steps) == 7 * 3  # ceil(20 / 3) = 7 epochs: at least 20 steps
