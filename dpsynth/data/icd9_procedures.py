"""ICD-9-CM procedure chapters (volume 3), and MIMIC-III's undotted diagnosis codes.

Procedure chapters follow ICD-9-CM volume 3 (00 procedures NEC, 01-05 nervous system, ...,
87-99 miscellaneous diagnostic and therapeutic procedures); the diagnosis hierarchy lives in
:mod:`dpsynth.data.icd9`. MIMIC-III writes codes without the dot (diagnosis ``'0389'`` is
038.9, ``'V4581'`` is V45.81, ``'E8781'`` is E878.1; procedure ``'3605'`` is 36.05):
:func:`dotted_diagnosis` restores the dot so the diagnosis hierarchy reads them. A code that
fits no chapter maps to ``None`` (missing), never to a guessed chapter.
"""

from __future__ import annotations

import math

import pandas as pd

from dpsynth.data.icd9 import category_of, chapter_of

# (first 2-digit category, last 2-digit category, label), ICD-9-CM volume 3 procedure chapters
PROCEDURE_CHAPTERS: tuple[tuple[int, int, str], ...] = (
    (0, 0, "00 procedures NEC"),
    (1, 5, "01-05 nervous"),
    (6, 7, "06-07 endocrine"),
    (8, 16, "08-16 eye"),
    (17, 17, "17 miscellaneous"),
    (18, 20, "18-20 ear"),
    (21, 29, "21-29 nose mouth pharynx"),
    (30, 34, "30-34 respiratory"),
    (35, 39, "35-39 cardiovascular"),
    (40, 41, "40-41 hemic lymphatic"),
    (42, 54, "42-54 digestive"),
    (55, 59, "55-59 urinary"),
    (60, 64, "60-64 male genital"),
    (65, 71, "65-71 female genital"),
    (72, 75, "72-75 obstetrical"),
    (76, 84, "76-84 musculoskeletal"),
    (85, 86, "85-86 integumentary"),
    (87, 99, "87-99 miscellaneous diagnostic therapeutic"),
)
PROCEDURE_LABELS: tuple[str, ...] = tuple(label for _, _, label in PROCEDURE_CHAPTERS)


def _missing(code) -> bool:
    return code is None or (isinstance(code, float) and math.isnan(code)) or str(code).strip() == ""


def dotted_diagnosis(code: str) -> str:
    """'4019' -> '401.9', 'V4581' -> 'V45.81', 'E8781' -> 'E878.1'; dotted codes unchanged."""
    text = str(code).strip().upper()
    if "." in text:
        return text
    head = 4 if text.startswith("E") else 3
    return text[:head] + ("." + text[head:] if len(text) > head else "")


def diagnosis_chapter(code) -> str | None:
    """The chapter bucket ('390-459', 'V01-V91', ...) of a dotted or MIMIC-style undotted
    diagnosis code, from :mod:`dpsynth.data.icd9`; None when missing or not a code."""
    if _missing(code):
        return None
    category = category_of(dotted_diagnosis(code))
    return None if category is None else chapter_of(category)


def procedure_chapter(code) -> str | None:
    """The volume-3 chapter label of one procedure code ('3605' or '36.05'); None when missing or malformed."""
    if _missing(code):
        return None
    text = str(code).strip().replace(".", "")
    head = text[:2]
    if len(head) < 2 or not head.isdigit():
        return None
    category = int(head)
    for low, high, label in PROCEDURE_CHAPTERS:
        if low <= category <= high:
            return label
    return None


def chapters(series: pd.Series, *, kind: str) -> pd.Series:
    """Map a column of codes to chapter labels; ``kind`` is 'diagnosis' or 'procedure'."""
    fn = {"diagnosis": diagnosis_chapter, "procedure": procedure_chapter}[kind]
    return series.map(fn).astype(object)
