"""The public ICD-9-CM hierarchy: chapters and 3-digit categories, written from the published
chapter ranges of the ICD-9-CM tabular list (never from data).

A fine code ("250.83", "10" for 010, "V57.1", "E888") maps to its 3-digit category ("250",
"010", "V57", "E888"); a category maps to its chapter, written as its range ("240-279"). The
public domain of a code column is every 3-digit category (001-999, V01-V91, E000-E999) plus
one bucket per chapter; :mod:`dpsynth.privacy.code_selection` keeps a DP-selected subset of
the categories and folds the others into their chapter's bucket.
"""

from __future__ import annotations

import re
from functools import lru_cache

from dpsynth.errors import DataError

#: (first, last, title) of each ICD-9-CM chapter; numeric ranges are 3-digit category numbers
CHAPTERS: tuple[tuple[str, str, str], ...] = (
    ("001", "139", "Infectious and parasitic diseases"),
    ("140", "239", "Neoplasms"),
    ("240", "279", "Endocrine, nutritional and metabolic diseases, and immunity disorders"),
    ("280", "289", "Diseases of the blood and blood-forming organs"),
    ("290", "319", "Mental disorders"),
    ("320", "389", "Diseases of the nervous system and sense organs"),
    ("390", "459", "Diseases of the circulatory system"),
    ("460", "519", "Diseases of the respiratory system"),
    ("520", "579", "Diseases of the digestive system"),
    ("580", "629", "Diseases of the genitourinary system"),
    ("630", "679", "Complications of pregnancy, childbirth, and the puerperium"),
    ("680", "709", "Diseases of the skin and subcutaneous tissue"),
    ("710", "739", "Diseases of the musculoskeletal system and connective tissue"),
    ("740", "759", "Congenital anomalies"),
    ("760", "779", "Certain conditions originating in the perinatal period"),
    ("780", "799", "Symptoms, signs, and ill-defined conditions"),
    ("800", "999", "Injury and poisoning"),
    ("V01", "V91", "Supplementary classification of factors influencing health status and contact with health services"),
    ("E000", "E999", "Supplementary classification of external causes of injury and poisoning"),
)

SYSTEMS = ("icd9",)
_CODE = re.compile(r"^(?:(?P<num>\d{1,3})|(?P<v>[Vv]\d{1,2})|(?P<e>[Ee]\d{1,3}))(?:\.\d{0,2})?$")


def chapter_label(first: str, last: str) -> str:
    return f"{first}-{last}"


@lru_cache(maxsize=1)
def categories() -> tuple[str, ...]:
    """Every 3-digit category of the public code space, in code order."""
    return (tuple(f"{i:03d}" for i in range(1, 1000)) + tuple(f"V{i:02d}" for i in range(1, 92))
            + tuple(f"E{i:03d}" for i in range(0, 1000)))


@lru_cache(maxsize=1)
def chapter_buckets() -> tuple[str, ...]:
    """One category per chapter ("390-459"), standing for its categories that were not kept."""
    return tuple(chapter_label(a, b) for a, b, _ in CHAPTERS)


def full_domain() -> tuple[str, ...]:
    """The public domain of an unselected code column: all categories, then the chapter buckets."""
    return categories() + chapter_buckets()


def category_of(code) -> str | None:
    """A code's 3-digit category ("250.83" -> "250", "10" -> "010", "V5.1" -> "V05"), or None
    when the text is not an ICD-9-CM diagnosis code."""
    text = str(code).strip()
    m = _CODE.match(text)
    if m is None:
        return None
    if m.group("num") is not None:
        value = int(m.group("num"))
        return f"{value:03d}" if value >= 1 else None
    if m.group("v") is not None:
        value = int(m.group("v")[1:])
        return f"V{value:02d}" if 1 <= value <= 91 else None
    return f"E{int(m.group('e')[1:]):03d}"


def chapter_of(category: str) -> str:
    """The chapter bucket ("390-459") of a 3-digit category, or of a bucket itself."""
    if category in chapter_buckets():
        return category
    for first, last, _ in CHAPTERS:
        same_kind = category[:1].isdigit() == first[0].isdigit() and (first[0].isdigit() or category[:1] == first[0])
        if same_kind and len(category) == len(first) and first <= category <= last:
            return chapter_label(first, last)
    raise DataError(f"'{category}' is not an ICD-9-CM category")


def coarsen(value, kept: frozenset | set) -> str | None:
    """Map a raw code to the first of (its 3-digit category, its chapter bucket) that is in
    ``kept``; None when the value is not an ICD-9-CM code (a bucket label maps to itself)."""
    text = str(value).strip()
    if text in kept and text in chapter_buckets():
        return text
    category = category_of(text)
    if category is None:
        return None
    if category in kept:
        return category
    bucket = chapter_of(category)
    return bucket if bucket in kept else None
