"""Image containers (ImageData, SyntheticImages and their writers) and the pixel checks the readers
share. Pixels are scaled to [-1, 1] with the schema's *declared* intensity range."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.data.image_schema import ImageSchema
from dpsynth.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class ImageData:
    """Real images ready for training: float32 (N, C, H, W) in [-1, 1], integer class indices,
    optional per-image metadata (the schema's sensitive attributes), in schema order."""

    images: np.ndarray
    labels: np.ndarray
    schema: ImageSchema
    metadata: pd.DataFrame | None = None
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or tuple(self.images.shape[1:]) != self.schema.shape:
            raise DataError(f"{self.source or 'images'}: shape {self.images.shape} does not match the schema's"
                            f" (N, {', '.join(map(str, self.schema.shape))})")
        if self.labels.shape != (n,):
            raise DataError(f"{self.source or 'images'}: {len(self.labels)} labels for {n} images")
        if self.metadata is not None and len(self.metadata) != n:
            raise DataError(f"{self.source or 'images'}: {len(self.metadata)} metadata rows for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> "ImageData":
        meta = None if self.metadata is None else self.metadata.iloc[index].reset_index(drop=True)
        return ImageData(self.images[index], self.labels[index], self.schema, meta, self.source)


@dataclass(frozen=True, eq=False)
class SyntheticImages:
    """Images sampled from a fitted generator: stored pixel values (N, C, H, W) in the schema's
    range (``schema.storage_dtype``), integer class indices."""

    images: np.ndarray
    labels: np.ndarray
    schema: ImageSchema
    generator: str
    info: dict = field(default_factory=dict)

    @classmethod
    def from_unit(cls, unit: np.ndarray, labels: np.ndarray, *, schema: ImageSchema, generator: str,
                  info: dict | None = None) -> "SyntheticImages":
        """From model output in [-1, 1] to the schema's stored range and dtype."""
        values = schema.from_unit(unit)
        dtype = schema.storage_dtype
        if dtype.kind == "u":
            values = np.rint(values)
        return cls(values.astype(dtype), np.asarray(labels, dtype=np.int64), schema, generator, dict(info or {}))

    def __len__(self) -> int:
        return len(self.images)

    def to_image_data(self) -> ImageData:
        return ImageData(self.schema.to_unit(self.images), self.labels, self.schema, None, f"synthetic:{self.generator}")

    def class_counts(self) -> dict:
        counts = np.bincount(self.labels, minlength=self.schema.n_classes)
        return {str(c): int(k) for c, k in zip(self.schema.classes, counts)}

    # ---- writers ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """``*.npz`` -> MedMNIST-style npz; anything else -> a folder of PNGs with labels.csv."""
        path = Path(path)
        if path.suffix.lower() == ".npz":
            return self.save_npz(path)
        return self.save_png_folder(path)

    def save_npz(self, path: str | Path, *, split: str = "train") -> Path:
        """Keys ``{split}_images`` ((N, H, W) grey or (N, H, W, 3) RGB) and ``{split}_labels`` (N, 1)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        images = self.images[:, 0] if self.schema.channels == 1 else np.transpose(self.images, (0, 2, 3, 1))
        label_dtype = np.uint8 if self.schema.n_classes <= 256 else np.int64
        np.savez_compressed(path, **{f"{split}_images": images, f"{split}_labels": self.labels.astype(label_dtype)[:, None]})
        return path

    def save_png_folder(self, folder: str | Path) -> Path:
        """``000000.png ...`` plus ``labels.csv`` (file, <label name>), readable by load_image_source."""
        from PIL import Image

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        dtype = self.schema.storage_dtype
        if dtype.kind != "u" or (dtype == np.uint16 and self.schema.channels == 3):
            raise DataError(f"{folder}: PNG holds 8-bit grey/RGB or 16-bit grey only; save this range as .npz")
        names = []
        for i, img in enumerate(self.images):
            name = f"{i:06d}.png"
            if self.schema.channels == 1:
                Image.fromarray(img[0]).save(folder / name)
            else:
                Image.fromarray(np.ascontiguousarray(np.transpose(img, (1, 2, 0))), mode="RGB").save(folder / name)
            names.append(name)
        labels = [self.schema.classes[k] for k in self.labels]
        pd.DataFrame({"file": names, self.schema.label: labels}).to_csv(folder / "labels.csv", index=False)
        return folder


def _to_nchw(images: np.ndarray, schema: ImageSchema, *, source: str) -> np.ndarray:
    if images.dtype.kind not in "uif":
        raise DataError(f"{source}: images have non-numeric dtype {images.dtype}")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = np.transpose(images, (0, 3, 1, 2))
    elif images.ndim != 4:
        raise DataError(f"{source}: images must be (N,H,W) or (N,H,W,C), got shape {images.shape}")
    got = tuple(images.shape[1:])
    if got != schema.shape:
        c, h, w = got
        raise DataError(f"{source}: images are {h}x{w} with {c} channel(s) but schema '{schema.name}' declares"
                        f" {schema.height}x{schema.width} with {schema.channels}")
    return images


def check_range(pixels: np.ndarray, schema: ImageSchema, *, source: str) -> np.ndarray:
    """Reject (or, with ``clip_to_range``, clip) values outside the declared [low, high]."""
    values = np.asarray(pixels)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise DataError(f"{source}: images hold NaN or infinite values")
    lo, hi = schema.low, schema.high
    outside = (values < lo) | (values > hi)
    if outside.any():
        if schema.clip_to_range:
            return np.clip(values, lo, hi)
        raise DataError(f"{source}: {int(outside.sum())} pixel value(s) outside the declared range [{lo}, {hi}]"
                        " (fix the schema, or set clip_to_range: true)")
    return values


def _check_labels(labels: np.ndarray, n: int, schema: ImageSchema, *, source: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n:
        raise DataError(f"{source}: labels have shape {labels.shape}, expected ({n},) or ({n}, 1)"
                        " (multi-label sets are not supported)")
    if labels.dtype.kind not in "ui" or (labels.size and (labels.min() < 0 or labels.max() >= schema.n_classes)):
        raise DataError(f"{source}: labels must be class indices 0..{schema.n_classes - 1} for classes {list(schema.classes)}")
    return labels.astype(np.int64)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
