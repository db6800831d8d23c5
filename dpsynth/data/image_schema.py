"""The public schema of an image dataset: size, channels, stored intensity range, classes, and the
sensitive metadata attributes (sex, age, ...) that subgroup metrics use.

Like the table :class:`~dpsynth.data.schema.Schema`, an ImageSchema is *public knowledge*: the
size and the intensity range come from the acquisition protocol or the dataset's documentation
(e.g. uint8 [0, 255] for MedMNIST, Hounsfield units [-1024, 3071] for CT), never from the pixels.
Loaders check images against it and raise a one-line DataError on a mismatch.

YAML form (``modality: image`` tells it apart from a table schema)::

    modality: image
    name: pneumoniamnist
    height: 28
    width: 28
    channels: 1
    low: 0
    high: 255
    label: label
    classes: [normal, pneumonia]
    metadata:                      # optional sensitive attributes, table-column syntax
      - {name: sex, kind: categorical, categories: [F, M], nullable: true, sensitive: true}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dpsynth.data.schema import Column, Schema, _COLUMN_KEYS, _key, _plain
from dpsynth.errors import SchemaError

_IMAGE_KEYS = {
    "modality", "name", "height", "width", "channels", "low", "high", "label", "classes", "metadata",
    "clip_to_range", "privacy_unit", "description",
}


@dataclass(frozen=True)
class ImageSchema:
    """An image dataset's public schema.

    ``low``/``high``: the declared range of the *stored* pixel values (after a DICOM modality
    LUT). ``clip_to_range``: clip values outside it (a fixed per-image rule) instead of raising.
    ``metadata``: sensitive per-image attributes, declared like table columns.
    """

    height: int
    width: int
    channels: int
    low: float
    high: float
    classes: tuple
    name: str = "images"
    label: str = "label"
    metadata: tuple[Column, ...] = ()
    clip_to_range: bool = False
    privacy_unit: str = "image"
    description: str = ""

    def __post_init__(self) -> None:
        src = f"image schema '{self.name}'"
        for key in ("height", "width", "channels"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise SchemaError(f"{src}: '{key}' must be a positive integer, got {value!r}")
        if self.channels not in (1, 3):
            raise SchemaError(f"{src}: 'channels' must be 1 (grey) or 3 (RGB), got {self.channels}")
        for key in ("low", "high"):
            if not isinstance(getattr(self, key), (int, float, np.integer, np.floating)) or isinstance(getattr(self, key), bool):
                raise SchemaError(f"{src}: '{key}' must be a number")
        if not float(self.low) < float(self.high):
            raise SchemaError(f"{src}: low ({self.low}) must be below high ({self.high})")
        classes = tuple(self.classes)
        if not classes:
            raise SchemaError(f"{src}: 'classes' must be a non-empty list")
        if len({_key(c) for c in classes}) != len(classes):
            raise SchemaError(f"{src}: duplicate classes in {list(classes)}")
        object.__setattr__(self, "classes", classes)
        names = [c.name for c in self.metadata]
        if self.label in names:
            raise SchemaError(f"{src}: label '{self.label}' is also a metadata attribute")
        if len(set(names)) != len(names):
            raise SchemaError(f"{src}: duplicate metadata attribute(s) in {names}")

    # ---- access -----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width)."""
        return (int(self.channels), int(self.height), int(self.width))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def sensitive(self) -> list[str]:
        return [c.name for c in self.metadata if c.sensitive]

    @property
    def metadata_schema(self) -> Schema | None:
        """The metadata attributes as a table Schema (for validation and subgroup metrics)."""
        return Schema(columns=self.metadata, name=f"{self.name}-metadata") if self.metadata else None

    def class_index(self, value: Any, *, source: str = "label") -> int:
        """Index of a class given by its value (``'pneumonia'``) or, failing that, its index (``1``)."""
        lookup = {_key(c): i for i, c in enumerate(self.classes)}
        if _key(value) in lookup:
            return lookup[_key(value)]
        if isinstance(value, str) and value.strip().isdigit():  # "1" from a command line
            value = int(value.strip())
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= int(value) < len(self.classes):
            return int(value)
        raise SchemaError(f"{source}: {value!r} is not a declared class {list(self.classes)}")

    # ---- intensity scaling (declared range only) ---------------------------------------
    def to_unit(self, pixels: np.ndarray) -> np.ndarray:
        """Stored pixel values in [low, high] -> float32 in [-1, 1]."""
        lo, hi = float(self.low), float(self.high)
        return ((np.asarray(pixels, dtype=np.float32) - lo) * (2.0 / (hi - lo)) - 1.0).astype(np.float32)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """float in [-1, 1] -> stored pixel values in [low, high] (float64, clipped)."""
        lo, hi = float(self.low), float(self.high)
        return np.clip((np.asarray(unit, dtype=np.float64) + 1.0) * 0.5 * (hi - lo) + lo, lo, hi)

    @property
    def storage_dtype(self) -> np.dtype:
        """uint8 / uint16 when the declared range is integral and fits, else float32."""
        lo, hi = float(self.low), float(self.high)
        if lo.is_integer() and hi.is_integer() and lo >= 0:
            if hi <= 255:
                return np.dtype(np.uint8)
            if hi <= 65535:
                return np.dtype(np.uint16)
        return np.dtype(np.float32)

    # ---- (de)serialisation -------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict, *, source: str = "image schema") -> "ImageSchema":
        if not isinstance(raw, dict):
            raise SchemaError(f"{source}: expected a mapping at the top level")
        unknown = set(raw) - _IMAGE_KEYS
        if unknown:
            raise SchemaError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_IMAGE_KEYS)}")
        if raw.get("modality", "image") != "image":
            raise SchemaError(f"{source}: modality must be 'image', got {raw.get('modality')!r}")
        missing = [k for k in ("height", "width", "channels", "low", "high", "classes") if k not in raw]
        if missing:
            raise SchemaError(f"{source}: missing required key(s) {missing}")
        if not isinstance(raw["classes"], list):
            raise SchemaError(f"{source}: 'classes' must be a list")
        meta_raw = raw.get("metadata") or []
        if not isinstance(meta_raw, list):
            raise SchemaError(f"{source}: 'metadata' must be a list of attributes")
        metadata = []
        for i, col in enumerate(meta_raw):
            if not isinstance(col, dict) or "name" not in col or "kind" not in col:
                raise SchemaError(f"{source}: metadata attribute #{i} needs at least 'name' and 'kind'")
            bad = set(col) - _COLUMN_KEYS
            if bad:
                raise SchemaError(f"{source}: metadata '{col['name']}': unknown key(s) {sorted(bad)}")
            kwargs = dict(col)
            if "categories" in kwargs:
                kwargs["categories"] = tuple(kwargs["categories"])
            metadata.append(Column(**kwargs))
        return cls(
            height=raw["height"], width=raw["width"], channels=raw["channels"], low=raw["low"], high=raw["high"],
            classes=tuple(raw["classes"]), name=str(raw.get("name", "images")), label=str(raw.get("label", "label")),
            metadata=tuple(metadata), clip_to_range=bool(raw.get("clip_to_range", False)),
            privacy_unit=str(raw.get("privacy_unit", "image")), description=str(raw.get("description", "")),
        )

    @classmethod
    def load(cls, path: str | Path) -> "ImageSchema":
        return cls.from_dict(_read_mapping(path), source=str(path))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"modality": "image", "name": self.name}
        if self.description:
            out["description"] = self.description
        out.update(height=int(self.height), width=int(self.width), channels=int(self.channels),
                   low=_plain(self.low), high=_plain(self.high), label=self.label,
                   classes=[_plain(c) for c in self.classes])
        if self.metadata:
            out["metadata"] = [c.to_dict() for c in self.metadata]
        if self.clip_to_range:
            out["clip_to_range"] = True
        out["privacy_unit"] = self.privacy_unit
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _read_mapping(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"schema file not found: {path}")
    try:
        text = path.read_text()
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SchemaError(f"schema file {path} is not valid YAML/JSON: {str(exc).splitlines()[0]}") from None


def load_any_schema(path: str | Path) -> Schema | ImageSchema:
    """A table Schema or an ImageSchema, told apart by the ``modality: image`` key."""
    raw = _read_mapping(path)
    if isinstance(raw, dict) and raw.get("modality") == "image":
        return ImageSchema.from_dict(raw, source=str(path))
    return Schema.from_dict(raw, source=str(path))


BUILTIN_DIR = Path(__file__).resolve().parent / "schemas"


def builtin_image_schema(name: str) -> ImageSchema:
    """A schema shipped under ``dpsynth/data/schemas/`` (e.g. ``pneumoniamnist``)."""
    path = BUILTIN_DIR / f"{name}.yaml"
    if not path.is_file():
        raise SchemaError(f"no built-in image schema '{name}'")
    return ImageSchema.load(path)
