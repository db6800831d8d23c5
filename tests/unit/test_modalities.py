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


def test_image_terminal_summary_shows_the_honest_verdict():
    """`dpsynth evaluate --run` on images printed only 'image_downstream_accuracy 0.1700': a CNN
    that predicts one RetinaMNIST grade for every test image looked like a number, not a FAIL. The
    terminal must carry the verdict, balanced accuracy (synthetic / real / majority) and recall."""
    side = lambda bal, recall: {"accuracy": 0.5, "balanced_accuracy": bal,  # noqa: E731
                                "per_class_recall": dict(zip("01234", recall))}
    honest = {"synthetic": side(0.2, [0, 0, 0, 1, 0]), "real": side(0.331, [0.77, 0, 0.41, 0.48, 0]),
              "majority": side(0.2, [1, 0, 0, 0, 0]), "verdict": "FAIL", "ordinal": False,
              "reasons": ["balanced accuracy 0.200 is no better than the majority class (0.200 + 0.02)"]}
    util = {"synthetic_accuracy": 0.17, "real_accuracy": 0.51, "majority_accuracy": 0.435,
            "synthetic_balanced_accuracy": 0.2, "real_balanced_accuracy": 0.331, "majority_balanced_accuracy": 0.2,
            "honest": honest}
    results = {"metrics": {"image_downstream_accuracy": {"value": 0.17, "breakdown": util},
                           "image_domain_fid": {"value": 18.9, "breakdown": {}}},
               "ledger": {"epsilon": 9.93, "delta": 1e-5}}
    text = modalities.by_name("image").terminal_summary(results, color=False)
    assert "utility verdict: FAIL" in text
    assert "balanced accuracy synthetic / real / majority: 0.200 / 0.331 / 0.200" in text
    assert "per-class recall, synthetic: 0 0.00, 1 0.00, 2 0.00, 3 1.00, 4 0.00" in text
    assert "no better than the majority class" in text
    assert text.splitlines()[0].startswith("Fit for release")
