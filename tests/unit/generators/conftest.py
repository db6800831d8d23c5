"""Shared fixtures of the generator unit tests."""

import numpy as np
import pytest

from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData

TWO_CLASS_SCHEMA = ImageSchema(height=8, width=8, channels=1, low=0, high=100, classes=("dark", "bright"), name="tiny")


@pytest.fixture(scope="module")
def two_class_images() -> ImageData:
    """300 grey 8x8 images in two classes, dark (~20) and bright (~80), with pixel noise."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    pixels = np.clip(rng.normal(20 + 60 * labels[:, None, None, None], 8, (300, 1, 8, 8)), 0, 100)
    return ImageData(TWO_CLASS_SCHEMA.to_unit(pixels), labels.astype(np.int64), TWO_CLASS_SCHEMA)
