"""A folder of image files (PNG/JPEG through pillow, DICOM through pydicom) with a ``labels.csv``.

``labels.csv`` columns: ``file`` (path relative to the folder), the schema's label column (class
values, e.g. ``pneumonia``), optionally one column per declared metadata attribute and a ``split``
column (train / val / test). For DICOM files, metadata attributes named ``sex`` and ``age`` that
the CSV does not give are read from the header (PatientSex, PatientAge in years).

DICOM pixels go through the modality LUT (RescaleSlope / RescaleIntercept, or a Modality LUT
Sequence) so the stored values are in physical units (e.g. HU) and compared with the schema's
declared range; MONOCHROME1 images are inverted inside that range so that bright means dense.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.image_data import ImageData, _first_line, _to_nchw, check_range
from dpsynth.errors import DataError, MissingExtraError, SchemaError

PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom", "")
_PIL_MODES = {"L": 1, "I;16": 1, "I;16B": 1, "I": 1, "F": 1, "RGB": 3}


def load_folder(folder: Path, *, schema: ImageSchema, split: str = "train") -> ImageData:
    csv = folder / "labels.csv"
    if not csv.is_file():
        raise DataError(f"{folder}: no labels.csv (columns: file, {schema.label}, optional metadata and split)")
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(f"{csv}: cannot read ({_first_line(exc)})") from None
    for col in ("file", schema.label):
        if col not in table.columns:
            raise DataError(f"{csv}: missing column '{col}'")
    if "split" in table.columns:
        table = table[table["split"] == split].reset_index(drop=True)
    elif split != "train":
        raise DataError(f"{csv}: no 'split' column, so there is no '{split}' split")
    if table.empty:
        raise DataError(f"{csv}: no rows for split '{split}'")
    images, headers = [], []
    for name in table["file"]:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: listed in labels.csv but not found")
        if path.suffix.lower() in PIL_SUFFIXES:
            images.append(read_pil(path, schema))
            headers.append({})
        elif path.suffix.lower() in DICOM_SUFFIXES:
            pixels, header = read_dicom(path, schema)
            images.append(pixels)
            headers.append(header)
        else:
            raise DataError(f"{path}: unsupported image file type '{path.suffix}'")
    labels = np.array([_label(v, schema, csv) for v in table[schema.label]], dtype=np.int64)
    metadata = _metadata(table, headers, schema, source=str(csv))
    stacked = np.stack(images).astype(np.float64)
    return ImageData(schema.to_unit(stacked), labels, schema, metadata, str(folder))


def _label(value: str, schema: ImageSchema, csv: Path) -> int:
    try:
        return schema.class_index(value, source=f"{csv}: column '{schema.label}'")
    except SchemaError as exc:
        raise DataError(str(exc)) from None


def read_pil(path: Path, schema: ImageSchema) -> np.ndarray:
    """One PNG/JPEG as (C, H, W) stored values, checked against the schema."""
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError("reading PNG/JPEG needs pillow: pip install 'dpsynth[image]'") from None
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except Exception as exc:
        raise DataError(f"{path}: not a readable image ({_first_line(exc)})") from None
    if mode not in _PIL_MODES:
        raise DataError(f"{path}: image mode '{mode}' is not supported (grey L/I;16 or RGB)")
    if _PIL_MODES[mode] != schema.channels:
        raise DataError(f"{path}: image has {_PIL_MODES[mode]} channel(s) but schema '{schema.name}' declares {schema.channels}")
    return _one(arr, schema, path)


def _one(arr: np.ndarray, schema: ImageSchema, path: Path) -> np.ndarray:
    nchw = _to_nchw(np.asarray(arr)[None], schema, source=str(path))[0]
    return check_range(nchw, schema, source=str(path))


def read_dicom(path: Path, schema: ImageSchema) -> tuple[np.ndarray, dict]:
    """One single-frame DICOM as (C, H, W) values after the modality LUT, plus header metadata."""
    try:
        import pydicom
    except ImportError:
        raise MissingExtraError("reading DICOM needs pydicom: pip install 'dpsynth[image]'") from None
    try:
        from pydicom.pixels import apply_modality_lut
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import apply_modality_lut
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable DICOM file ({_first_line(exc)})") from None
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DataError(f"{path}: DICOM file has no pixel data (not an image; e.g. a structured report)")
    if int(getattr(ds, "NumberOfFrames", 1) or 1) != 1:
        raise DataError(f"{path}: multi-frame DICOM ({ds.NumberOfFrames} frames) is not supported; one image per file")
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        raise DataError(f"{path}: PALETTE COLOR DICOM is not supported")
    try:
        arr = ds.pixel_array  # YBR is converted to RGB by pydicom
    except Exception as exc:
        raise DataError(f"{path}: cannot decode pixel data ({_first_line(exc)}; compressed files may need"
                        " pylibjpeg or gdcm)") from None
    if arr.ndim == 2 or photometric.startswith("MONOCHROME"):
        arr = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    values = _one(np.asarray(arr), schema, path)
    if photometric == "MONOCHROME1":
        values = schema.low + schema.high - values
    return values, _header_metadata(ds)


def _header_metadata(ds) -> dict:
    out = {}
    sex = str(getattr(ds, "PatientSex", "") or "").strip()
    if sex:
        out["sex"] = sex
    age = dicom_age_years(str(getattr(ds, "PatientAge", "") or ""))
    if age is not None:
        out["age"] = age
    return out


def dicom_age_years(text: str) -> float | None:
    """DICOM AS ('045Y', '006M', '003W', '010D') -> years; None when absent or malformed."""
    text = text.strip()
    if len(text) < 2 or not text[:-1].isdigit():
        return None
    per_year = {"Y": 1.0, "M": 12.0, "W": 52.1775, "D": 365.25}.get(text[-1].upper())
    return None if per_year is None else int(text[:-1]) / per_year


def _metadata(table: pd.DataFrame, headers: list[dict], schema: ImageSchema, *, source: str) -> pd.DataFrame | None:
    meta_schema = schema.metadata_schema
    if meta_schema is None:
        return None
    columns = {}
    for col in schema.metadata:
        if col.name in table.columns:
            values = table[col.name].replace("", np.nan)
        else:
            values = pd.Series([h.get(col.name, np.nan) for h in headers], dtype=object)
            if col.kind == "integer":
                values = values.map(lambda v: v if _missing(v) else math.floor(float(v)))
        columns[col.name] = values.to_numpy()
    return meta_schema.prepare(pd.DataFrame(columns), source=source).reset_index(drop=True)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
