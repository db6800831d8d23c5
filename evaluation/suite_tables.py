"""The public tuning suite: medical tables that build offline, each with a public schema.

    from evaluation.suite_tables import TABLES, load_table
    frame, schema = load_table("flchain")      # None when its source is absent (a message says why)

Every table is one row per privacy unit with a declared binary target. Sources: the lifelines
package (ACTG 175, GBSG2), scikit-survival's bundled sets (FLCHAIN, ACTG 320 ``load_aids``,
WHAS500; ``pip install scikit-survival``), scikit-learn (WDBC) and ``../shared/data``
(UCI Heart Disease, 4 sites pooled; Heart Failure; Diabetes-130, first encounter per patient;
HAM10000, first image per lesion). Schemas live in ``evaluation/schemas/``, written from each
table's documentation. The loaders apply per-row rules from the documentation only (renames,
outcome columns dropped, target derived); the one subsample (Diabetes-130: 10,000 patients,
random_state 0) is a fixed public choice made for run time. None of these is a table of issue 16.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Callable

import pandas as pd

from dpsynth.data.schema import Schema

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE / "schemas"
SHARED = Path(os.environ.get("DPSYNTH_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
DIABETES_ROWS = 10_000


def _actg175() -> tuple[pd.DataFrame, Schema]:
    from dpsynth.data.embedded import get_embedded

    ds = get_embedded("actg175")
    return ds.load(), ds.schema()


def _sksurv(name: str, event: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    from sksurv import datasets

    x, y = getattr(datasets, name)()
    frame = x.drop(columns=list(drop)).copy()
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(str)
    frame[event] = y[event].astype(int)
    return frame


def _flchain() -> pd.DataFrame:
    frame = _sksurv("load_flchain", "death", drop=("chapter",)).rename(columns={"sample.yr": "sample_yr",
                                                                              "flc.grp": "flc_grp"})
    frame["age"] = frame["age"].round().astype("Int64")
    return frame


def _aids() -> pd.DataFrame:
    frame = _sksurv("load_aids", "censor")
    for col in ("age", "priorzdv"):
        frame[col] = frame[col].round().astype("Int64")
    return frame


def _whas500() -> pd.DataFrame:
    frame = _sksurv("load_whas500", "fstat")
    for col in ("age", "diasbp", "hr", "los", "sysbp"):
        frame[col] = frame[col].round().astype("Int64")
    return frame


def _gbsg2() -> pd.DataFrame:
    from lifelines.datasets import load_gbsg2

    return load_gbsg2()


def _wdbc() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data.rename(columns=lambda c: c.replace(" ", "_"))
    frame["malignant"] = (data.target == 0).astype(int)
    return frame


def _uci_heart() -> pd.DataFrame | None:
    from evaluation.uci_heart import SITES, read_site

    folder = SHARED / "ehr" / "uci_heart_disease"
    if not folder.is_dir():
        return None
    return pd.concat([read_site(folder, site) for site in SITES], ignore_index=True)


def _heart_failure() -> pd.DataFrame | None:
    path = SHARED / "ehr" / "heart_failure.csv"
    return pd.read_csv(path) if path.is_file() else None


def _ham10000() -> pd.DataFrame | None:
    path = SHARED / "ham10000" / "HAM10000_metadata.csv"
    if not path.is_file():
        return None
    raw = pd.read_csv(path).drop_duplicates("lesion_id", keep="first")  # privacy unit: the lesion
    frame = raw[["age", "sex", "localization", "dx_type"]].copy()
    frame["age"] = frame["age"].round().astype("Int64")
    frame["malignant"] = raw["dx"].isin(["mel", "bcc", "akiec"]).astype(int)
    return frame.reset_index(drop=True)


def _diabetes130() -> pd.DataFrame | None:
    path = SHARED / "ehr" / "diabetes130.zip"
    if not path.is_file():
        return None
    with zipfile.ZipFile(path) as z:
        raw = pd.read_csv(z.open("dataset_diabetes/diabetic_data.csv"), low_memory=False)
    raw = raw.sort_values("encounter_id").drop_duplicates("patient_nbr", keep="first")  # one row per patient
    raw = raw.rename(columns=lambda c: c.replace("-", "_"))
    raw["readmitted30"] = (raw["readmitted"] == "<30").astype(int)
    raw = raw.sample(n=DIABETES_ROWS, random_state=0) if len(raw) > DIABETES_ROWS else raw
    return raw.reset_index(drop=True)


# name -> (builder, schema file or None for the embedded schema, source label)
TABLES: dict[str, tuple[Callable[[], pd.DataFrame | None], str | None, str]] = {
    "actg175": (lambda: None, None, "lifelines ACTG175.csv (embedded)"),
    "flchain": (_flchain, "suite_flchain.yaml", "scikit-survival load_flchain"),
    "diabetes130": (_diabetes130, "suite_diabetes130_wide.yaml", "shared/data/ehr/diabetes130.zip"),
    "ham10000": (_ham10000, "suite_ham10000.yaml", "shared/data/ham10000/HAM10000_metadata.csv"),
    "aids": (_aids, "suite_aids.yaml", "scikit-survival load_aids (ACTG 320)"),
    "uci_heart": (_uci_heart, "uci_heart_disease.yaml", "shared/data/ehr/uci_heart_disease (4 sites)"),
    "gbsg2": (_gbsg2, "suite_gbsg2.yaml", "lifelines load_gbsg2"),
    "wdbc": (_wdbc, "suite_wdbc.yaml", "scikit-learn load_breast_cancer"),
    "whas500": (_whas500, "suite_whas500.yaml", "scikit-survival load_whas500"),
    "heart_failure": (_heart_failure, "suite_heart_failure.yaml", "shared/data/ehr/heart_failure.csv"),
}


def load_table(name: str) -> tuple[pd.DataFrame, Schema] | None:
    """The table's prepared frame and its public schema; None (with a message) when the source is absent."""
    builder, schema_file, source = TABLES[name]
    if schema_file is None:
        frame, schema = _actg175()
    else:
        try:
            frame = builder()
        except ImportError as exc:
            print(f"skip {name}: {exc.name} is not installed")
            return None
        if frame is None:
            print(f"skip {name}: {source} is absent")
            return None
        schema = Schema.load(SCHEMAS / schema_file)
        frame = frame[[c for c in frame.columns if c in set(schema.names) | set(schema.drop)]]
    return schema.prepare(frame, source=source), schema


def load_schema(name: str) -> Schema:
    """The table's public schema alone (no data read)."""
    schema_file = TABLES[name][1]
    if schema_file is None:
        from dpsynth.data.embedded import get_embedded

        return get_embedded("actg175").schema()
    return Schema.load(SCHEMAS / schema_file)


if __name__ == "__main__":
    for table in TABLES:
        loaded = load_table(table)
        if loaded is not None:
            f, s = loaded
            print(f"{table}: {len(f)} rows x {len(s.names)} columns, target {s.target} (rate {f[s.target].astype(float).mean():.3f})")
