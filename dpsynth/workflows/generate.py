"""``generate``: sample from a saved model and write the samples through its modality
(tables: CSV/Parquet in chunks; images: .npz or a PNG folder), atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from dpsynth import modalities, safe_io
from dpsynth.artifacts import LoadedRun, load_run
from dpsynth.errors import DpsynthError
from dpsynth.privacy.ledger import Ledger


@dataclass
class GenerateResult:
    out: Path
    rows: int
    seconds: float
    ledger: Ledger


def parse_conditions(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise DpsynthError(f"condition '{pair}' must look like column=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def generate(
    *,
    model: str | Path | LoadedRun,
    n: int,
    out: str | Path,
    seed: int = 0,
    conditions: Mapping[str, Any] | None = None,
    chunk_rows: int = 200_000,
    threads: int = 1,
    balance: str | Sequence[str] | None = None,
    balance_target: str | Path | None = None,
    max_rows: int | None = None,
) -> GenerateResult:
    """Sample ``n`` rows from a saved model and write them to CSV/Parquet (streamed in chunks,
    written to a temporary file and renamed, so a failure leaves no partial output).

    ``balance`` (columns) asks for equal counts in every cell of their categories;
    ``balance_target`` (a YAML file) for a target distribution over cells; see
    :mod:`dpsynth.balance`. Both are post-processing of the model: no privacy cost.

    ``n`` is refused above ``max_rows`` (None: no cap) and when its estimated size does not fit
    the free space of ``out``'s disk."""
    if n <= 0:
        raise DpsynthError(f"number of rows must be > 0, got {n}")
    safe_io.check_rows(n, max_rows=max_rows)
    out = Path(out)
    loaded = model if isinstance(model, LoadedRun) else load_run(model, require_manifest=True)
    modality = modalities.for_run(loaded)
    safe_io.check_free_space(out, need_bytes=n * modality.row_bytes(loaded.schema), what=f"{n} rows")
    start = time.perf_counter()
    modality.write_samples(loaded, n=n, out=out, seed=seed, conditions=conditions, threads=threads,
                           chunk_rows=chunk_rows, balance=balance, balance_target=balance_target)
    return GenerateResult(out=out, rows=n, seconds=time.perf_counter() - start, ledger=loaded.ledger)


def generate_images(*, loaded: LoadedRun, n: int, out: Path, seed: int, conditions, threads: int) -> GenerateResult:
    """Sample images and write a MedMNIST-style .npz or a PNG folder with labels.csv (atomically)."""
    start = time.perf_counter()
    modalities.by_name("image").write_samples(loaded, n=n, out=Path(out), seed=seed, conditions=conditions,
                                              threads=threads)
    return GenerateResult(out=Path(out), rows=n, seconds=time.perf_counter() - start, ledger=loaded.ledger)
