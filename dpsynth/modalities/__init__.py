"""Modalities: tables and images behind one small contract (:class:`~dpsynth.modalities.base.Modality`).

The source is classified ONCE, here; the workflows then call the modality's methods and never
ask which kind of source they hold::

    modality = for_source("pneumoniamnist.npz")   # Images()
    modality = for_run(loaded)                    # by the saved generator's modality
"""

from __future__ import annotations

from pathlib import Path

from dpsynth.data.loaders import is_embedded
from dpsynth.errors import DataError, DpsynthError
from dpsynth.modalities.base import Modality
from dpsynth.modalities.images import Images
from dpsynth.modalities.tables import Tables

MODALITIES: dict[str, Modality] = {"table": Tables(), "image": Images()}


def is_image_source(data: str, schema_path: str | Path | None = None) -> bool:
    """A .npz file, a folder, or any source with an image schema (``modality: image``)."""
    if not is_embedded(data) and not Path(data).exists():
        raise DataError(f"data file not found: {data}")
    if schema_path is not None:
        from dpsynth.data.image_schema import ImageSchema, load_any_schema

        return isinstance(load_any_schema(schema_path), ImageSchema)
    path = Path(data)
    return path.suffix.lower() == ".npz" or path.is_dir()


def by_name(name: str) -> Modality:
    try:
        return MODALITIES[name]
    except KeyError:
        raise DpsynthError(f"unknown modality '{name}' (known: {', '.join(MODALITIES)})") from None


def for_source(data: str, schema_path: str | Path | None = None) -> Modality:
    """The modality of a training source (an embedded name, a file or a folder, and its schema)."""
    return by_name("image" if is_image_source(data, schema_path) else "table")


def for_run(loaded) -> Modality:
    """The modality of a saved run: its generator's."""
    return by_name(loaded.generator.modality)
