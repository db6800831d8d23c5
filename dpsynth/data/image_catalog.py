"""The built-in image schemas, listed for ``dpsynth datasets`` (a new user's first look).

Each built-in schema (``dpsynth/data/schemas/*.yaml`` with ``modality: image``) is public
knowledge: size, channels, stored range and classes. A ``.npz`` whose file name matches one
(e.g. ``pneumoniamnist.npz``) is read with it and needs no ``--schema``; the data themselves are
not shipped (MedMNIST v2, CC BY 4.0: https://medmnist.com, Yang et al., Sci Data 2023).
"""

from __future__ import annotations

from dpsynth.data.image_schema import BUILTIN_DIR, ImageSchema, load_any_schema

IMAGE_INPUTS = ("images: a MedMNIST-style .npz (train_images/train_labels, optional val_/test_), a folder of"
                " PNG/JPEG files with labels.csv (file,<label>[,split][,metadata]), or a DICOM folder with"
                " labels.csv (pydicom, [image] extra); folders and unknown .npz names need --schema IMAGE.yaml")


TEMPLATES = ("medmnist_grey28",)  # schemas with no data set behind them: copy, name the classes, pass --schema


def builtin_image_schemas() -> list[ImageSchema]:
    out = []
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        schema = load_any_schema(path)
        if isinstance(schema, ImageSchema):
            out.append(schema)
    return out


def describe_image_schemas() -> list[str]:
    """Two lines per built-in image schema."""
    lines = []
    for s in builtin_image_schemas():
        lines.append(f"{s.name}: image schema, {s.height}x{s.width}, {s.channels} channel(s), range [{s.low:g},"
                     f" {s.high:g}], {s.n_classes} classes")
        if s.name in TEMPLATES:
            lines.append(f"  classes: {', '.join(map(str, s.classes))}  (a template, no data set: `dpsynth datasets"
                         f" {s.name} > my_schema.yaml`, write the class names, then --data X.npz --schema"
                         " my_schema.yaml)")
        else:
            lines.append(f"  classes: {', '.join(map(str, s.classes))}  (use: --data {s.name}.npz; "
                         f"data not shipped, see `dpsynth datasets {s.name}`)")
    return lines


def image_schema_yaml(name: str) -> str | None:
    """The YAML of a built-in image schema, or None when ``name`` is not one."""
    path = BUILTIN_DIR / f"{name}.yaml"
    if not path.is_file():
        return None
    schema = load_any_schema(path)
    return path.read_text() if isinstance(schema, ImageSchema) else None
