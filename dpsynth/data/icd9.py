"""ICD-9-CM chapters: the public hierarchy that coarsens high-cardinality codes before any DP step.

Diagnosis chapters follow the ICD-9-CM tabular list (001-139 infectious and parasitic
diseases, ..., 800-999 injury and poisoning, V supplementary factors, E external causes).
Procedure chapters follow ICD-9-CM volume 3 (00 procedures NEC, 01-05 nervous system, ...,
87-99 miscellaneous diagnostic and therapeutic procedures). Codes are read as written in
MIMIC-III (no dot: ``'0389'`` is 038.9, ``'V4581'`` is V45.81, procedure ``'3605'`` is 36.05);
a code that fits no chapter maps to ``None`` (missing), never to a guessed chapter.
"""

from __future__ import annotations

import math

import pandas as pd

# (first 3-digit category, last 3-digit category, label), ICD-9-CM diagnosis chapters 1-17
DIAGNOSIS_CHAPTERS: tuple[tuple[int, int, str], ...] = (
    (1, 139, "001-139 infectious"),
    (140, 239, "140-239 neoplasms"),
    (240, 279, "240-279 endocrine metabolic"),
    (280, 289, "280-289 blood"),
    (290, 319, "290-319 mental"),
    (320, 389, "320-389 nervous sense"),
    (390, 459, "390-459 circulatory"),
    (460, 519, "460-519 respiratory"),
    (520, 579, "520-579 digestive"),
    (580, 629, "580-629 genitourinary"),
    (630, 679, "630-679 pregnancy"),
    (680, 709, "680-709 skin"),
    (710, 739, "710-739 musculoskeletal"),
    (740, 759, "740-759 congenital"),
    (760, 779, "760-779 perinatal"),
    (780, 799, "780-799 ill-defined"),
    (800, 999, "800-999 injury poisoning"),
)
DIAGNOSIS_V = "V supplementary"
DIAGNOSIS_E = "E external causes"
DIAGNOSIS_LABELS: tuple[str, ...] = tuple(label for _, _, label in DIAGNOSIS_CHAPTERS) + (DIAGNOSIS_V, DIAGNOSIS_E)

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


def diagnosis_chapter(code) -> str | None:
    """The chapter label of one ICD-9-CM diagnosis code (``None`` when missing or malformed)."""
    if _missing(code):
        return None
    text = str(code).strip().upper().replace(".", "")
    if text.startswith("V"):
        return DIAGNOSIS_V
    if text.startswith("E"):
        return DIAGNOSIS_E
    head = text[:3]
    if len(head) < 3 or not head.isdigit():
        return None
    category = int(head)
    for low, high, label in DIAGNOSIS_CHAPTERS:
        if low <= category <= high:
            return label
    return None


def procedure_chapter(code) -> str | None:
    """The chapter label of one ICD-9-CM procedure code (``None`` when missing or malformed)."""
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
