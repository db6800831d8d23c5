"""Reading image sources: the MedMNIST ``.npz`` reader and :func:`load_image_source`, the one
entry point the workflows call (folders of files: :mod:`dpsynth.data.image_files`; the
containers and writers: :mod:`dpsynth.data.image_data`, re-exported here).

Pixels are scaled to [-1, 1] with the schema's *declared* intensity range; nothing about the
data's size or range is measured. Errors are one-line :class:`~dpsynth.errors.DataError` naming
the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.data.image_data import (SPLITS, ImageData, SyntheticImages, _check_labels, _first_line,  # noqa: F401
                                     _to_nchw, check_range)
from dpsynth.data.image_files import load_folder
from dpsynth.data.image_schema import ImageSchema, builtin_image_schema
from dpsynth.errors import DataError, SchemaError


# ---- reading ------------------------------------------------------------------------------
def load_image_source(path: str | Path, *, schema: ImageSchema | None = None, split: str = "train") -> ImageData:
    """Load one split of an image source: a MedMNIST-style ``.npz``, or a folder of PNG/JPEG or
    DICOM files with a ``labels.csv`` (columns ``file``, the schema's label, optional metadata
    columns and an optional ``split`` column).

    Without ``schema``, a ``.npz`` whose name matches a built-in schema (pneumoniamnist,
    breastmnist, retinamnist) uses it; anything else needs a declared schema.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"image source not found: {path}")
    if path.is_dir():
        if schema is None:
            raise DataError(f"{path}: an image folder needs a declared image schema (size, intensity range, classes)")
        return load_folder(path, schema=schema, split=split)
    if path.suffix.lower() != ".npz":
        raise DataError(f"{path}: unsupported image source (use a .npz file or a folder with labels.csv)")
    return read_npz(path, schema=schema if schema is not None else default_schema_for(path), split=split)


def load_image_splits(path: str | Path, *, schema: ImageSchema | None = None) -> dict[str, ImageData]:
    """Every split the source holds (``train`` always; ``val``/``test`` when present)."""
    path = Path(path)
    out = {"train": load_image_source(path, schema=schema, split="train")}
    for split in ("val", "test"):
        if _has_split(path, split):
            out[split] = load_image_source(path, schema=out["train"].schema, split=split)
    return out


def default_schema_for(path: Path) -> ImageSchema:
    try:
        return builtin_image_schema(path.stem.lower())
    except SchemaError:
        raise DataError(f"{path}: no built-in image schema for '{path.stem}'; declare one (size, range, classes)") from None


def _has_split(path: Path, split: str) -> bool:
    if path.is_dir():
        csv = path / "labels.csv"
        if not csv.is_file():
            return False
        frame = pd.read_csv(csv)
        return "split" in frame.columns and bool((frame["split"].astype(str) == split).any())
    try:
        with np.load(path, allow_pickle=False) as archive:
            return f"{split}_images" in archive.files
    except Exception:
        return False


def read_npz(path: str | Path, *, schema: ImageSchema, split: str = "train") -> ImageData:
    """A MedMNIST-style npz: ``{split}_images`` (N,H,W) or (N,H,W,C), ``{split}_labels`` (N,) or (N,1)."""
    path = Path(path)
    keys = (f"{split}_images", f"{split}_labels")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise DataError(f"{path}: missing key(s) {missing} (found: {sorted(archive.files)})")
            images, labels = archive[keys[0]], archive[keys[1]]
    except DataError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled arrays), OSError, EOFError ...
        raise DataError(f"{path}: not a readable .npz archive ({_first_line(exc)})") from None
    if images.shape[:1] == (0,):
        raise DataError(f"{path}: '{keys[0]}' holds no images")
    images = _to_nchw(images, schema, source=str(path))
    labels = _check_labels(labels, len(images), schema, source=str(path))
    return ImageData(schema.to_unit(check_range(images, schema, source=str(path))), labels, schema, None, str(path))
