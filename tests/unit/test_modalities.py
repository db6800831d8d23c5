"""The modality contract: tables and images implement every method of ``Modality``, the source is
classified in one place, and each modality's name is a generator modality in the registry."""

from __future__ import annotations

import inspect

import pytest

from dpsynth import modalities
from dpsynth.errors import DataError, DpsynthError
from dpsynth.generators.registry import REGISTRY
from dpsynth.modalities.base import Modality

CONTRACT = sorted(name for name, member in vars(Modality).items()
                  if inspect.isfunction(member) and not name.startswith("_"))


def test_contract_is_not_empty():
    assert {"training_set", "write_samples", "evaluate_run", "scan_release"} <= set(CONTRACT)


@pytest.mark.parametrize("name", sorted(modalities.MODALITIES))
def test_every_modality_implements_the_contract(name):
    modality = modalities.by_name(name)
    missing = [m for m in CONTRACT if not callable(getattr(modality, m, None))]
    assert not missing, f"{name} lacks {missing}"
    assert modality.name == name
    assert REGISTRY[modality.default_generator].modality == name
    assert {getattr(cls, "modality", "table") for cls in REGISTRY.values()} <= set(modalities.MODALITIES)


def test_sources_are_classified_once(tmp_path):
    assert modalities.for_source("actg175").name == "table"
    (tmp_path / "scans.npz").write_bytes(b"")  # classified by its suffix, not read
    assert modalities.for_source(str(tmp_path / "scans.npz")).name == "image"
    (tmp_path / "folder").mkdir()
    assert modalities.for_source(str(tmp_path / "folder")).name == "image"
    (tmp_path / "t.csv").write_text("a\n1\n")
    assert modalities.for_source(str(tmp_path / "t.csv")).name == "table"
    with pytest.raises(DataError, match="data file not found"):
        modalities.for_source(str(tmp_path / "missing.csv"))
    with pytest.raises(DpsynthError, match="unknown modality"):
        modalities.by_name("audio")
