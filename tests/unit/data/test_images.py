"""Image schema, loaders (npz, PNG folder, DICOM folder) and writers, on tiny generated files."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.image_schema import ImageSchema, builtin_image_schema, load_any_schema
from dpsynth.data.images import SyntheticImages, load_image_source, load_image_splits
from dpsynth.data.schema import Schema
from dpsynth.errors import DataError, SchemaError

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
GREY = ImageSchema(height=8, width=8, channels=1, low=0, high=255, classes=("no", "yes"), name="grey8")


def _npz(path, images, labels, split="train"):
    np.savez(path, **{f"{split}_images": images, f"{split}_labels": labels})
    return path


# ---- schema -------------------------------------------------------------------------------
def test_schema_yaml_round_trip_and_dispatch(tmp_path):
    schema = ImageSchema.from_dict({
        "modality": "image", "name": "ct", "height": 16, "width": 16, "channels": 1, "low": -1024, "high": 3071,
        "classes": ["normal", "nodule"], "metadata": [
            {"name": "sex", "kind": "categorical", "categories": ["F", "M"], "sensitive": True, "nullable": True},
            {"name": "age", "kind": "integer", "low": 0, "high": 120, "sensitive": True}]})
    schema.save(tmp_path / "s.yaml")
    again = load_any_schema(tmp_path / "s.yaml")
    assert isinstance(again, ImageSchema) and again == schema
    assert again.sensitive == ["sex", "age"] and again.storage_dtype == np.float32
    assert again.class_index("nodule") == 1 and again.class_index(0) == 0 and again.class_index("1") == 1


def test_schema_rejects_unknown_keys_and_bad_values():
    base = {"height": 8, "width": 8, "channels": 1, "low": 0, "high": 255, "classes": [0, 1]}
    with pytest.raises(SchemaError, match="unknown key"):
        ImageSchema.from_dict({**base, "colour": "grey"})
    with pytest.raises(SchemaError, match="low"):
        ImageSchema.from_dict({**base, "low": 300})
    with pytest.raises(SchemaError, match="channels"):
        ImageSchema.from_dict({**base, "channels": 2})
    with pytest.raises(SchemaError, match="missing"):
        ImageSchema.from_dict({k: v for k, v in base.items() if k != "classes"})


def test_builtin_medmnist_schemas():
    for name in ("pneumoniamnist", "breastmnist", "retinamnist", "medmnist_grey28"):
        schema = builtin_image_schema(name)
        assert (schema.height, schema.width, schema.low, schema.high) == (28, 28, 0, 255)
    assert builtin_image_schema("retinamnist").channels == 3


# ---- npz ------------------------------------------------------------------------------------
def test_npz_grey_and_rgb_scaled_with_declared_range(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (5, 8, 8), dtype=np.uint8)
    grey[0, 0, 0], grey[0, 0, 1] = 0, 255
    data = load_image_source(_npz(tmp_path / "g.npz", grey, np.array([[0], [1], [1], [0], [1]], np.uint8)), schema=GREY)
    assert data.images.shape == (5, 1, 8, 8) and data.images.dtype == np.float32
    assert data.images[0, 0, 0, 0] == -1.0 and data.images[0, 0, 0, 1] == 1.0
    assert data.labels.tolist() == [0, 1, 1, 0, 1]
    rgb_schema = ImageSchema(height=8, width=8, channels=3, low=0, high=255, classes=(0, 1, 2))
    rgb = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    data = load_image_source(_npz(tmp_path / "c.npz", rgb, np.array([0, 1, 2, 1])), schema=rgb_schema)
    assert data.images.shape == (4, 3, 8, 8)
    np.testing.assert_allclose(data.images[1, 2], rgb[1, :, :, 2] / 127.5 - 1, atol=1e-6)


def test_npz_errors_name_the_file(tmp_path):
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DataError, match="corrupt.npz.*not a readable"):
        load_image_source(bad, schema=GREY)
    keys = tmp_path / "keys.npz"
    np.savez(keys, images=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError, match=r"keys.npz: missing key\(s\) \['train_images', 'train_labels'\]"):
        load_image_source(keys, schema=GREY)
    size = _npz(tmp_path / "size.npz", np.zeros((2, 16, 16), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="size.npz: images are 16x16 with 1 channel.*declares 8x8"):
        load_image_source(size, schema=GREY)
    narrow = ImageSchema(height=8, width=8, channels=1, low=0, high=100, classes=(0, 1))
    over = _npz(tmp_path / "over.npz", np.full((2, 8, 8), 200, np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(DataError, match=r"over.npz: 128 pixel value\(s\) outside the declared range \[0, 100\]"):
        load_image_source(over, schema=narrow)
    clipped = ImageSchema(height=8, width=8, channels=1, low=0, high=100, classes=(0, 1), clip_to_range=True)
    assert load_image_source(over, schema=clipped).images.max() == 1.0
    labels = _npz(tmp_path / "labels.npz", np.zeros((2, 8, 8), np.uint8), np.array([0, 5]))
    with pytest.raises(DataError, match="labels.npz: labels must be class indices 0..1"):
        load_image_source(labels, schema=GREY)
    with pytest.raises(DataError, match="no built-in image schema"):
        load_image_source(labels)


def test_synthetic_npz_and_png_writers_read_back(tmp_path):
    rng = np.random.default_rng(1)
    unit = rng.uniform(-1, 1, (6, 1, 8, 8)).astype(np.float32)
    syn = SyntheticImages.from_unit(unit, np.array([0, 1, 0, 1, 1, 0]), schema=GREY, generator="test")
    assert syn.images.dtype == np.uint8 and syn.class_counts() == {"no": 3, "yes": 3}
    for target in (tmp_path / "syn.npz", tmp_path / "pngs"):
        back = load_image_source(syn.save(target), schema=GREY)
        np.testing.assert_array_equal(GREY.from_unit(back.images).round().astype(np.uint8), syn.images)
        assert back.labels.tolist() == syn.labels.tolist()


# ---- DICOM ----------------------------------------------------------------------------------
def _dicom(path, pixels, *, photometric="MONOCHROME2", sex="F", age="045Y", intercept=-1024, with_pixels=True):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    if sex:
        ds.PatientSex = sex
    if age:
        ds.PatientAge = age
    if with_pixels:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, intercept
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path).Modality == "CT"
    return path


CT = ImageSchema.from_dict({
    "height": 8, "width": 8, "channels": 1, "low": -1024, "high": 3071, "classes": ["normal", "nodule"],
    "metadata": [{"name": "sex", "kind": "categorical", "categories": ["F", "M"], "sensitive": True},
                 {"name": "age", "kind": "integer", "low": 0, "high": 120, "sensitive": True, "nullable": True}]})


def test_dicom_folder_modality_lut_and_header_metadata(tmp_path):
    raw = np.arange(64, dtype=np.uint16).reshape(8, 8) * 60  # 0 .. 3780 stored -> -1024 .. 2756 HU
    _dicom(tmp_path / "a.dcm", raw, sex="F", age="045Y")
    _dicom(tmp_path / "b.dcm", raw, sex="M", age="006M")
    _dicom(tmp_path / "c.dcm", raw, sex="M", age="", photometric="MONOCHROME1")
    pd.DataFrame({"file": ["a.dcm", "b.dcm", "c.dcm"], "label": ["normal", "nodule", "nodule"]}).to_csv(
        tmp_path / "labels.csv", index=False)
    data = load_image_source(tmp_path, schema=CT)
    hu = CT.from_unit(data.images)
    np.testing.assert_allclose(hu[0, 0], raw - 1024.0, atol=1e-3)
    np.testing.assert_allclose(hu[2, 0], -1024.0 + 3071.0 - (raw - 1024.0), atol=1e-3)  # MONOCHROME1 inverted
    assert data.labels.tolist() == [0, 1, 1]
    assert data.metadata["sex"].tolist() == ["F", "M", "M"]
    assert data.metadata["age"].iloc[0] == 45 and data.metadata["age"].iloc[1] == 0
    assert np.isnan(data.metadata["age"].iloc[2])


def test_dicom_errors_name_the_file(tmp_path):
    _dicom(tmp_path / "report.dcm", None, with_pixels=False)
    pd.DataFrame({"file": ["report.dcm"], "label": ["normal"]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match="report.dcm: DICOM file has no pixel data"):
        load_image_source(tmp_path, schema=CT)
    (tmp_path / "junk.dcm").write_bytes(b"not dicom at all")
    pd.DataFrame({"file": ["junk.dcm"], "label": ["normal"]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match="junk.dcm: not a readable DICOM"):
        load_image_source(tmp_path, schema=CT)
    _dicom(tmp_path / "big.dcm", np.zeros((16, 16), np.uint16))
    pd.DataFrame({"file": ["big.dcm"], "label": ["normal"]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match="big.dcm: images are 16x16"):
        load_image_source(tmp_path, schema=CT)
    _dicom(tmp_path / "hot.dcm", np.full((8, 8), 5000, np.uint16))
    pd.DataFrame({"file": ["hot.dcm"], "label": ["normal"]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"hot.dcm: 64 pixel value\(s\) outside the declared range"):
        load_image_source(tmp_path, schema=CT)
    with pytest.raises(DataError, match="needs a declared image schema"):
        load_image_source(tmp_path)


def test_png_folder_with_splits_and_metadata(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    rows = []
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"file": f"{i}.png", "label": ["no", "yes"][i % 2], "split": "train" if i < 4 else "test",
                     "sex": "FM"[i % 2]})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    schema = ImageSchema.from_dict({**GREY.to_dict(), "metadata": [
        {"name": "sex", "kind": "categorical", "categories": ["F", "M"], "sensitive": True}]})
    splits = load_image_splits(tmp_path, schema=schema)
    assert sorted(splits) == ["test", "train"] and len(splits["train"]) == 4 and len(splits["test"]) == 2
    assert splits["train"].metadata["sex"].tolist() == ["F", "M", "F", "M"]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "0.png")
    with pytest.raises(DataError, match="0.png: image has 3 channel"):
        load_image_source(tmp_path, schema=schema)


@pytest.mark.skipif(not (SHARED / "medmnist").is_dir(), reason="shared/data/medmnist not present beside the repo")
def test_real_medmnist_files_load_with_builtin_schemas():
    splits = load_image_splits(SHARED / "medmnist" / "pneumoniamnist.npz")
    assert {k: len(v) for k, v in splits.items()} == {"train": 4708, "val": 524, "test": 624}
    assert splits["train"].images.min() >= -1 and splits["train"].images.max() <= 1
    retina = load_image_source(SHARED / "medmnist" / "retinamnist.npz", split="test")
    assert retina.images.shape == (400, 3, 28, 28) and set(retina.labels) <= set(range(5))


def test_table_schema_still_loads(tmp_path):
    (tmp_path / "t.yaml").write_text("columns: [{name: a, kind: binary}]\n")
    assert isinstance(load_any_schema(tmp_path / "t.yaml"), Schema)
