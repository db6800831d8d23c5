"""Honest image utility: majority baseline, per-class recall, ordinal kappa, and the verdict."""

import numpy as np
import pytest

from dpsynth.data.image_schema import ImageSchema
from dpsynth.metrics.image_verdict import class_scores, is_ordinal, majority_baseline, utility_verdict

TRAIN = np.array([0] * 70 + [1] * 30)
TEST = np.array([0] * 8 + [1] * 2)


def onehot(pred, k):
    out = np.full((len(pred), k), 0.01)
    out[np.arange(len(pred)), pred] = 1.0
    return out / out.sum(1, keepdims=True)


def test_a_cnn_that_predicts_the_majority_class_fails_despite_high_accuracy():
    maj = majority_baseline(TRAIN, TEST, n_classes=2)
    assert maj["majority_class"] == 0 and maj["accuracy"] == 0.8 and maj["balanced_accuracy"] == 0.5
    syn = class_scores(onehot(np.zeros(10, int), 2), TEST, n_classes=2)
    real = class_scores(onehot(np.array([0] * 7 + [1] + [1, 0]), 2), TEST, n_classes=2)
    assert syn["per_class_recall"] == {"0": 1.0, "1": 0.0} and real["per_class_recall"] == {"0": 0.875, "1": 0.5}
    v = utility_verdict(syn, real, maj, target=0.9)
    assert v["verdict"] == "FAIL" and not v["meets_target"]
    assert v["accuracy_ratio"] == pytest.approx(0.8 / 0.8)  # the ratio that misled: 1.0
    assert v["balanced_accuracy_ratio"] == pytest.approx(0.5 / 0.6875)
    assert len(v["reasons"]) == 2  # no better than majority, and one class for 100% of the images


def test_a_useful_cnn_passes_and_is_read_against_the_target():
    maj = majority_baseline(TRAIN, TEST, n_classes=2)
    real = class_scores(onehot(TEST, 2), TEST, n_classes=2)
    syn = class_scores(onehot(np.array([0] * 7 + [1] + [1, 1]), 2), TEST, n_classes=2)
    v = utility_verdict(syn, real, maj, target=0.9)
    assert syn["balanced_accuracy"] == pytest.approx(0.9375)
    assert v["verdict"] == "PASS" and v["meets_target"] and v["balanced_accuracy_ratio"] == pytest.approx(0.9375)
    assert not utility_verdict(syn, real, maj, target=0.95)["meets_target"]


def test_five_ordinal_grades_get_kappa_and_grade_error():
    labels = np.array([0, 0, 1, 2, 3, 4, 4, 2])
    off_by_one = np.array([0, 1, 1, 2, 2, 4, 3, 2])
    s = class_scores(onehot(off_by_one, 5), labels, n_classes=5, ordinal=True)
    assert s["mean_absolute_grade_error"] == pytest.approx(3 / 8)
    assert 0.8 < s["quadratic_weighted_kappa"] < 1.0
    far = class_scores(onehot(np.array([4, 4, 4, 0, 0, 0, 0, 0]), 5), labels, n_classes=5, ordinal=True)
    assert far["quadratic_weighted_kappa"] < 0
    assert set(s["per_class_recall"]) == {"0", "1", "2", "3", "4"} and 0 < s["auroc"] <= 1


def test_ordinal_means_integer_grades():
    grades = ImageSchema(height=8, width=8, channels=3, low=0, high=255, classes=(0, 1, 2, 3, 4))
    names = ImageSchema(height=8, width=8, channels=1, low=0, high=255, classes=("akiec", "bcc", "nv"))
    binary = ImageSchema(height=8, width=8, channels=1, low=0, high=255, classes=(0, 1))
    assert is_ordinal(grades) and not is_ordinal(names) and not is_ordinal(binary)


def test_no_target_is_met_against_a_real_cnn_that_learned_nothing():
    maj = majority_baseline(TRAIN, TEST, n_classes=2)
    real = class_scores(onehot(np.zeros(10, int), 2), TEST, n_classes=2)  # the real CNN predicts the majority
    syn = class_scores(onehot(np.array([0] * 7 + [1] + [1, 0]), 2), TEST, n_classes=2)
    v = utility_verdict(syn, real, maj, target=0.8)
    assert v["verdict"] == "PASS" and v["balanced_accuracy_ratio"] > 1 and not v["meets_target"] and "note" in v
