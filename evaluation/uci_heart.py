"""Read the four UCI Heart Disease sites into frames that fit evaluation/schemas/uci_heart_disease.yaml.

Per-row rules from the documentation only (no statistic of the data): '?' is missing; chol = 0
and trestbps = 0 are the sites' code for "not measured" (missing); the target is num > 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope", "ca",
           "thal", "num"]
SITES = {"cleveland": "processed.cleveland.data", "hungary": "processed.hungarian.data",
         "switzerland": "processed.switzerland.data", "va": "processed.va.data"}
SCHEMA = Path(__file__).resolve().parent / "schemas" / "uci_heart_disease.yaml"


def read_site(folder: str | Path, site: str) -> pd.DataFrame:
    raw = pd.read_csv(Path(folder) / SITES[site], header=None, names=COLUMNS, na_values="?")
    for col in ("chol", "trestbps"):
        raw.loc[raw[col] == 0, col] = np.nan
    raw["disease"] = (raw.pop("num") > 0).astype(int)
    for col in raw.columns:  # whole-number codes written as 1.0 are integers
        values = raw[col].dropna()
        if col != "oldpeak" and len(values) and np.all(values == np.round(values)):
            raw[col] = raw[col].astype("Int64")
    return raw


def main() -> None:
    """Write the four sites as CSV files that fit the schema (for `dpsynth federated --sites ...`)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "ehr" /
                   "uci_heart_disease", help="folder with the processed.*.data files")
    p.add_argument("--out", type=Path, required=True, help="folder to write <site>.csv into")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for site in SITES:
        frame = read_site(args.data, site)
        frame.to_csv(args.out / f"{site}.csv", index=False)
        print(f"{args.out / (site + '.csv')}: {len(frame)} rows")


if __name__ == "__main__":
    main()
