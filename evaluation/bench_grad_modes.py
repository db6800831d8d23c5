"""Benchmark: DP-SGD step time and peak memory per ``grad_sample_mode``, against the non-DP step,
for every DP-SGD generator, in one run.

For each generator (dp-gan and dp-diffusion on Diabetes-130, dp-gan-image and the dp-diffusion-image
UNet on PneumoniaMNIST) it trains a few full training steps (fixed logical batch, one thread) with:
the non-private reference (plain Adam on uniformly drawn batches of the same size), and DP-SGD in
hooks, functorch, ew, ghost and bk (book-keeping clipping, dpsynth/privacy/bookkeeping.py) modes (and
``vmap``, dpsynth's torch.func path, for the UNet). Each row says whether it is the generator's default. A
step is the generator's whole step (real-row DP-SGD step of the private network + fake rows +
generator update where there is one); its time is the median interval between progress callbacks in
CPU time of the training thread (one torch thread: what the step costs on an idle core; wall time on
the shared benchmark machine is inflated by other jobs).
Peak memory is the peak RSS above the RSS just before the fit, sampled every 2 ms (CPU; freed
memory is returned with malloc_trim between runs).

    python evaluation/bench_grad_modes.py                   # everything, ~10 min on one idle core
    python evaluation/bench_grad_modes.py --generators dp-gan --tab-batch 2048
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData
from dpsynth.data.schema import Schema
from dpsynth.data.table import TableData
from dpsynth.generators import REGISTRY
from dpsynth.privacy.budget import Budget

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SHARED = Path(os.environ.get("DPSYNTH_SHARED_DATA", HERE.parent.parent / "shared" / "data"))  # ../shared/data
DIABETES = SHARED / "ehr" / "diabetes130.zip"
PNEUMONIA = SHARED / "medmnist" / "pneumoniamnist.npz"
MODES = ("hooks", "functorch", "ew", "ghost", "bk")


def load_diabetes_rows() -> TableData:
    """All 101,766 Diabetes-130 encounters in the benchmark schema (timing only: no split)."""
    schema = Schema.load(HERE / "schemas" / "diabetes130.yaml")
    with zipfile.ZipFile(DIABETES) as z:
        raw = pd.read_csv(z.open("dataset_diabetes/diabetic_data.csv"), low_memory=False)
    raw["readmitted30"] = (raw["readmitted"] == "<30").astype(int)
    return TableData(schema.prepare(raw[schema.names], source=str(DIABETES)), schema)


def load_pneumonia() -> ImageData:
    z = np.load(PNEUMONIA)
    schema = ImageSchema(height=28, width=28, channels=1, low=0, high=255, classes=("normal", "pneumonia"),
                         name="pneumoniamnist")
    images = z["train_images"][:, None].astype(np.float64)
    return ImageData(schema.to_unit(images), z["train_labels"].reshape(-1).astype(np.int64), schema)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_one(name: str, params: dict, data, *, private: bool, seed: int = 0) -> dict:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    stamps: list[float] = []
    base = _rss()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    load_start = os.getloadavg()
    thread.start()
    budget = Budget(epsilon=1.0) if private else Budget.non_private_reference()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            REGISTRY[name](**params).fit(data, budget=budget, rng=np.random.default_rng(seed),
                                         progress=lambda info: stamps.append(time.thread_time()))
        error = None
    except Exception as exc:  # a mode opacus cannot run on this network: reported, not hidden
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    total = time.perf_counter() - start
    stop.set()
    thread.join()
    intervals = np.diff(stamps).tolist()
    return {"step_ms": 1e3 * statistics.median(intervals) if intervals else None, "steps": len(stamps),
            "fit_s": total, "peak_rss_mb": (peak[0] - base) / 2**20, "error": error,
            "load_avg_start": load_start, "load_avg_end": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", nargs="+", default=["dp-gan", "dp-diffusion", "dp-gan-image",
                                                            "dp-diffusion-image"])
    parser.add_argument("--tab-batch", type=int, default=2048, help="logical batch of the tabular runs")
    parser.add_argument("--tab-steps", type=int, default=12)
    parser.add_argument("--img-batch", type=int, default=64)
    parser.add_argument("--img-steps", type=int, default=5)
    parser.add_argument("--img-noise-multiplicity", type=int, default=1,
                        help="dp-diffusion-image's K (only vmap and bk clip an image over K > 1 copies)")
    parser.add_argument("--modes", nargs="+", default=None, help="only these grad_sample_modes (default: all)")
    parser.add_argument("--paired", action="store_true",
                        help="run the non-DP reference again right before each DP mode and take the ratio to that "
                             "adjacent reference (on a shared machine the load drifts between runs)")
    parser.add_argument("--out", default=str(RESULTS / "bench_grad_modes.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    tables = load_diabetes_rows() if any(g in ("dp-gan", "dp-diffusion") for g in args.generators) else None
    images = load_pneumonia() if any(g.endswith("-image") for g in args.generators) else None
    tab = {"batch_size": args.tab_batch, "steps": args.tab_steps, "max_physical_batch_size": args.tab_batch}
    configs = {
        "dp-gan": (tables, tab, MODES),
        "dp-diffusion": (tables, tab, MODES),
        "dp-gan-image": (images, {"batch_size": args.img_batch, "epochs": args.img_steps * args.img_batch / 4708,
                                  "max_physical_batch_size": args.img_batch, "device": "cpu"}, MODES),
        # noise multiplicity 1 so every mode clips the same example (hooks/ew/ghost see one row per image)
        "dp-diffusion-image": (images, {"batch_size": args.img_batch, "epochs": args.img_steps * args.img_batch / 4708,
                                        "noise_multiplicity": args.img_noise_multiplicity,
                                        "max_physical_batch_size": args.img_batch,
                                        "device": "cpu"}, ("vmap",) + MODES),
    }
    rows = []
    out = Path(args.out)
    for name in args.generators:
        data, params, modes = configs[name]
        modes = [m for m in modes if args.modes is None or m in args.modes]
        default_mode = REGISTRY[name].grad_sample_mode  # the dataclass default
        ref = run_one(name, params, data, private=False)
        rows.append({"generator": name, "mode": "non-DP", **ref, "ratio": 1.0})
        print(f"{name:18s} non-DP     step {ref['step_ms']:8.1f} ms  peak +{ref['peak_rss_mb']:7.1f} MB", flush=True)
        for i, mode in enumerate(modes):
            if args.paired and i > 0:
                ref = run_one(name, params, data, private=False)
                rows.append({"generator": name, "mode": "non-DP", **ref, "ratio": 1.0})
                print(f"{name:18s} non-DP     step {ref['step_ms']:8.1f} ms  peak +{ref['peak_rss_mb']:7.1f} MB", flush=True)
            res = run_one(name, {**params, "grad_sample_mode": mode}, data, private=True)
            ratio = res["step_ms"] / ref["step_ms"] if res["step_ms"] and ref["step_ms"] else None
            rows.append({"generator": name, "mode": mode, "default": mode == default_mode, **res, "ratio": ratio,
                         "reference_step_ms": ref["step_ms"]})
            if res["error"]:
                print(f"{name:18s} {mode:10s} FAILED {res['error']}", flush=True)
            else:
                print(f"{name:18s} {mode:10s} step {res['step_ms']:8.1f} ms  peak +{res['peak_rss_mb']:7.1f} MB  "
                      f"DP/non-DP {ratio:.2f}x", flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"settings": vars(args), "load_avg_at_end": os.getloadavg(), "rows": rows},
                                      indent=2))
    print("\n| generator | mode | step (ms) | DP / non-DP | peak RSS above start (MB) | load avg |\n|---|---|---|---|---|---|")
    for r in rows:
        if r["error"]:
            print(f"| {r['generator']} | {r['mode']} | failed: {r['error'][:60]} | | |")
        else:
            mode = f"**{r['mode']} (default)**" if r.get("default") else r["mode"]
            print(f"| {r['generator']} | {mode} | {r['step_ms']:.1f} | {r['ratio']:.2f} | {r['peak_rss_mb']:.0f} | "
                  f"{r['load_avg_start'][0]:.1f}-{r['load_avg_end'][0]:.1f} |")


if __name__ == "__main__":
    main()
