"""The public ICD-9-CM hierarchy, code columns in the schema, and the DP selection of kept codes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.data import icd9
from dpsynth.data.schema import Schema
from dpsynth.errors import DataError, SchemaError
from dpsynth.privacy.code_selection import recode, select_codes
from dpsynth.privacy.ledger import Ledger


def test_categories_and_chapters_come_from_the_published_ranges():
    cats = icd9.categories()
    assert len(cats) == 999 + 91 + 1000 and cats[0] == "001" and "V91" in cats and cats[-1] == "E999"
    assert len(icd9.chapter_buckets()) == 19
    assert icd9.category_of("250.83") == "250" and icd9.category_of("10") == "010"
    assert icd9.category_of("V57.1") == "V57" and icd9.category_of("E888") == "E888"
    assert icd9.category_of("?") is None and icd9.category_of("V99") is None and icd9.category_of("0") is None
    expected = {"001": "001-139", "139": "001-139", "140": "140-239", "250": "240-279", "428": "390-459",
                "799": "780-799", "800": "800-999", "V57": "V01-V91", "E888": "E000-E999"}
    assert {c: icd9.chapter_of(c) for c in expected} == expected
    # every category falls in exactly one chapter
    assert all(icd9.chapter_of(c) in icd9.chapter_buckets() for c in cats)


def _schema(**col):
    return Schema.from_dict({"name": "t", "columns": [{"name": "dx", "kind": "categorical", "codes": "icd9",
                                                       "nullable": True, **col},
                                                      {"name": "y", "kind": "binary", "categories": [0, 1]}]})


def test_a_code_column_maps_raw_codes_onto_its_public_domain():
    schema = _schema()
    assert schema["dx"].categories == icd9.full_domain()
    raw = pd.DataFrame({"dx": ["250.83", "10", "V57", None, "428"], "y": [0, 1, 0, 1, 1]})
    assert list(schema.prepare(raw)["dx"]) == ["250", "010", "V57", None, "428"]
    narrow = _schema(categories=["250", *icd9.chapter_buckets()])
    assert list(narrow.prepare(raw)["dx"]) == ["250", "001-139", "V01-V91", None, "390-459"]
    assert "categories" not in schema.to_dict()["columns"][0] and narrow.to_dict()["columns"][0]["codes"] == "icd9"
    with pytest.raises(DataError, match="column 'dx' holds 'XYZ', not an ICD-9-CM code"):
        schema.prepare(pd.DataFrame({"dx": ["XYZ"], "y": [0]}))
    with pytest.raises(SchemaError, match="codes 'icd10'"):
        _schema(codes="icd10")
    with pytest.raises(SchemaError, match="top_codes"):
        _schema(top_codes=0)


def test_dp_selection_keeps_the_frequent_categories_and_is_charged():
    schema = _schema(top_codes=2)
    rng = np.random.default_rng(0)
    values = ["428"] * 400 + ["250.1"] * 300 + ["414"] * 150 + ["V57"] * 5 + ["038"] * 3
    frame = schema.prepare(pd.DataFrame({"dx": values, "y": rng.integers(0, 2, len(values))}))
    ledger = Ledger(delta=1e-5, target_epsilon=10.0)
    narrowed = select_codes(frame, schema, ledger=ledger, noise_multiplier=5.0, rng=rng, contribution=3)
    kept = [c for c in narrowed["dx"].categories if c not in icd9.chapter_buckets()]
    assert kept == ["250", "428"] and narrowed["dx"].top_codes is None
    entry = ledger.entries[0]
    assert entry.mechanism == "gaussian" and entry.noise_multiplier == 5.0
    assert entry.params["l2_sensitivity"] == pytest.approx(3 * math.sqrt(1)) and entry.params["rows_per_unit"] == 3
    out = recode(frame, narrowed)
    assert out["dx"].value_counts().to_dict() == {"428": 400, "250": 300, "390-459": 150, "V01-V91": 5, "001-139": 3}
