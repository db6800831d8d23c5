"""Shared plumbing for the peer runner scripts (no dpsynth import: this runs inside peer virtualenvs).

A runner is called as
    python run_X.py --method M --epsilon E --seed S --train train.csv --spec spec.json --out DIR --n N [--quick]
It reads the training split (peer encoding: categoricals as strings, nullable numerics with a
`<name>__na` indicator, see datasets.py), fits, samples N rows, and writes DIR/synthetic.csv and
DIR/timings.json = {fit_s, sample_s, peak_rss_mb, notes}. Peak RSS is this process's ru_maxrss.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--method", required=True)
    p.add_argument("--epsilon", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--quick", action="store_true")
    return p.parse_args()


def seed_peer_libraries(seed: int) -> None:
    """One torch thread, and the GLOBAL numpy / torch seeds: the peer libraries draw from the
    global RNGs and take no generator argument (dpsynth itself never does this)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed)


def read_inputs(args):
    import pandas as pd

    spec = json.loads(Path(args.spec).read_text())
    cats = [c["name"] for c in spec["columns"] if c["kind"] == "categorical"]
    frame = pd.read_csv(args.train, dtype={c: str for c in cats}, keep_default_na=False)
    for c in spec["columns"]:
        if c["kind"] == "numeric":
            frame[c["name"]] = frame[c["name"]].astype(float)
    return frame, spec


def bin_frame(frame, spec, bins: int):
    """Public-bounds equal-width binning of numeric columns (a documented preprocessing for
    discrete-only peers): returns the binned frame (bin index as string) and the edges."""
    import numpy as np

    out = frame.copy()
    edges = {}
    for c in spec["columns"]:
        if c["kind"] != "numeric":
            continue
        e = np.linspace(c["low"], c["high"], bins + 1)
        edges[c["name"]] = e
        idx = np.clip(np.searchsorted(e, frame[c["name"]].to_numpy(), side="right") - 1, 0, bins - 1)
        out[c["name"]] = [f"b{i}" for i in idx]
    return out, edges


def unbin_frame(frame, edges, rng):
    """Map bin labels back to a uniform draw inside the bin (integers are rounded later)."""
    import numpy as np

    out = frame.copy()
    for name, e in edges.items():
        idx = np.array([int(str(v).lstrip("b").split(".")[0]) if str(v).lstrip("b").split(".")[0].isdigit() else 0
                        for v in frame[name]])
        idx = np.clip(idx, 0, len(e) - 2)
        out[name] = rng.uniform(e[idx], e[idx + 1])
    return out


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0


def write_outputs(args, synthetic, fit_s: float, sample_s: float, notes: str = "") -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    synthetic.to_csv(out / "synthetic.csv", index=False)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    (out / "timings.json").write_text(json.dumps(
        {"fit_s": fit_s, "sample_s": sample_s, "rows": int(len(synthetic)), "peak_rss_mb": rss_mb, "notes": notes}))
