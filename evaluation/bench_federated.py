"""Federated DP training across hospitals (Flower) vs each site alone vs pooled, on real data.

Tables: UCI Heart Disease, four sites (Cleveland, Hungary, Switzerland, VA). Each site's rows are
split once (seeded, stratified on the target) into 70% training rows and 30% held-out rows. For
each generator and epsilon:

- federated: ``dpsynth federated`` over the four training sets (each site's ledger at epsilon);
- local: the same generator trained on one site's training rows alone, at the same epsilon;
- pooled: trained on the union of the four training sets (the unrealistic upper bound: the
  hospitals cannot pool their rows), at the same epsilon;
- real: TRTR on the site's own training rows, for scale.

Score: TSTR AUROC on each site's held-out rows (classifier family and hyper-parameters chosen by
CV on the synthetic side only; dpsynth.metrics.utility). No hyper-parameter was tuned on the reported
held-out rows: the federated marginal settings were chosen with ``--validation`` (each site's
training rows split again 70/30; ``evaluation/results/federated_validation.md``); the DP-SGD
parameters below are fixed up front (batch 32 so that the smallest site has >= 3
Poisson batches per epoch; 30 epochs to fit the shared 2-core machine). Synthetic rows: as many as the training rows of the model's data.

Images (``--images``): PneumoniaMNIST's training split cut into 3 unequal sites (50/30/20%,
seeded), a small CPU profile of dp-diffusion-image over Flower, TSTR AUROC of a small CNN on the
official test split, vs the same profile on the pooled training split; bounded by ``--image-timeout``.

Run (2 shared cores; prints its figures and writes evaluation/results/federated.md + .json):
    OMP_NUM_THREADS=1 python evaluation/bench_federated.py --generators dp-gan dp-diffusion --epsilons 1 4
    OMP_NUM_THREADS=1 python evaluation/bench_federated.py --images-only --image-epsilon 10
    OMP_NUM_THREADS=1 python evaluation/bench_federated.py --validation --generators mst aim --epsilons 1 4 --seeds 0 1 2
    python evaluation/bench_federated.py --regenerate   # the .md from the .json and federated_notes.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from uci_heart import SCHEMA, SITES, read_site  # noqa: E402

DATA = Path(os.environ.get("DPSYNTH_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "evaluation" / "results"
PARAMS = {
    "dp-gan": {"batch_size": 32, "epochs": 30.0},
    "dp-diffusion": {"batch_size": 32, "epochs": 30.0},
    # marginal path: the single-site generators' defaults (federated: same bins; see dpsynth/federated/marginal.py)
    "mst": {},
    "aim": {},
    "independent": {},
}
IMAGE_PARAMS = {"block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8, "noise_multiplicity": 2,
                "batch_size": 64, "epochs": 0.5, "lr": 1e-3, "ema_decay": 0.99, "sample_steps": 20,
                "max_physical_batch_size": 64, "sample_batch_size": 200, "device": "cpu"}


def split_site(frame: pd.DataFrame, *, seed: int, test: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    test_idx = []
    for _, group in frame.groupby("disease"):
        idx = rng.permutation(group.index.to_numpy())
        test_idx.extend(idx[: int(round(test * len(idx)))])
    mask = frame.index.isin(test_idx)
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def fit_sample(generator: str, params: dict, frame: pd.DataFrame, schema, *, epsilon: float, seed: int) -> pd.DataFrame:
    from dpsynth.config import build_generator
    from dpsynth.data.table import TableData
    from dpsynth.privacy.budget import Budget

    gen = build_generator(generator, params)
    rng = np.random.default_rng(seed)
    gen.fit(TableData(frame, schema), budget=Budget(epsilon=epsilon), rng=rng)
    return gen.sample(len(frame), rng=rng).frame


def tstr(train: pd.DataFrame, synthetic: pd.DataFrame, test: pd.DataFrame, schema, *, seed: int):
    """(TSTR AUROC, TRTR AUROC); TSTR is None when the synthetic rows hold < 3 rows of a class
    (no classifier can be cross-validated on them: the generator collapsed onto one outcome)."""
    from dpsynth.errors import DataError
    from dpsynth.metrics.encoding import coerce_frame
    from dpsynth.metrics.utility import utility_table

    try:
        res, _ = utility_table(train=coerce_frame(train, schema, role="train"),
                               synthetic=coerce_frame(synthetic, schema, role="synthetic"),
                               test=coerce_frame(test, schema, role="test"), schema=schema, seed=seed)
    except DataError as exc:
        if not str(exc).startswith("synthetic:"):
            raise
        print(f"  no TSTR: {exc}", flush=True)
        empty = synthetic.iloc[:0]
        res, _ = utility_table(train=coerce_frame(train, schema, role="train"), synthetic=coerce_frame(
            pd.concat([train, empty]), schema, role="synthetic"), test=coerce_frame(test, schema, role="test"),
            schema=schema, seed=seed)
        return None, res["trtr"]["selected"]["auroc"]
    return res["tstr"]["selected"]["auroc"], res["trtr"]["selected"]["auroc"]


def run_tables(args, save=None) -> list[dict]:
    import torch


    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        args.seed = seed
        rows += run_tables_seed(args, save=save, done=rows)
    return rows


def run_tables_seed(args, save=None, done=()) -> list[dict]:
    from dpsynth.config import PrivacyConfig
    from dpsynth.data.schema import Schema
    from dpsynth.federated.config import FederatedConfig
    from dpsynth.federated.workflow import run_federated

    schema = Schema.load(SCHEMA)
    folder = DATA / "ehr" / "uci_heart_disease"
    parts = {s: split_site(schema.prepare(read_site(folder, s), source=s), seed=args.seed) for s in SITES}
    pooled_train = pd.concat([p[0] for p in parts.values()], ignore_index=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for s, (train, _) in parts.items():
            files[s] = Path(tmp) / f"{s}.csv"
            train.to_csv(files[s], index=False)
        for generator in args.generators:
            for eps in args.epsilons:
                params = PARAMS[generator]
                t0 = time.perf_counter()
                cfg = FederatedConfig(sites=tuple((s, str(f)) for s, f in files.items()), schema=str(SCHEMA),
                                      generator=generator, rounds=args.rounds, seed=args.seed, params=params,
                                      privacy=PrivacyConfig(epsilon=eps))
                fed = run_federated(config=cfg, out=Path(tmp) / f"fed_{generator}_{eps}", overwrite=True)
                site_column = getattr(getattr(fed.generator, "schema_", None), "names", [None])[-1]
                site_column = site_column if site_column not in schema.names else None  # the model's site column
                fed_syn = sample_per_site(fed.generator, site_column, parts, seed=args.seed)
                fed_seconds = time.perf_counter() - t0
                t0 = time.perf_counter()
                pooled_syn = fit_sample(generator, params, pooled_train, schema, epsilon=eps, seed=args.seed)
                pooled_seconds = time.perf_counter() - t0
                site_eps = {k: round(v.epsilon(), 4) for k, v in fed.site_ledgers.items()}
                print(f"{generator} eps={eps}: federated {fed_seconds:.0f}s (site epsilons {site_eps}), "
                      f"pooled {pooled_seconds:.0f}s", flush=True)
                for s, (train, test) in parts.items():
                    t0 = time.perf_counter()
                    local_syn = fit_sample(generator, params, train, schema, epsilon=eps, seed=args.seed)
                    local_seconds = time.perf_counter() - t0
                    row = {"generator": generator, "epsilon": eps, "site": s, "n_train": len(train),
                           "n_test": len(test), "test_positives": int(test["disease"].astype(int).sum()),
                           "rounds": len(fed.reports), "seed": args.seed, "site_epsilon_federated": site_eps[s],
                           "seconds": {"federated_all_sites": round(fed_seconds, 1),
                                       "pooled": round(pooled_seconds, 1), "local": round(local_seconds, 1)}}
                    row["federated"], row["trtr_site"] = tstr(train, fed_syn[s], test, schema, seed=args.seed)
                    row["federated_site_column"] = site_column
                    row["local"], _ = tstr(train, local_syn, test, schema, seed=args.seed)
                    row["pooled"], _ = tstr(train, pooled_syn, test, schema, seed=args.seed)
                    print(json.dumps({k: row[k] for k in ("generator", "epsilon", "site", "federated", "local",
                                                          "pooled", "trtr_site")}), flush=True)
                    rows.append(row)
                if save is not None:
                    save(list(done) + rows)
    return rows


# The federated marginal settings compared on VALIDATION rows (``--validation``): each seed's
# training rows of every site are split again 70/30 (seed 1000 + seed); the model is fitted on the
# inner 70% and scored on the inner 30%; the reported held-out 30% is never read.
VALIDATION_GRID = {
    "mst": {
        "no site column, w1, 16 bins": {"site_column": None, "target_weight": 1.0, "bins": 16},
        "no site column, w4, 16 bins": {"site_column": None, "target_weight": 4.0, "bins": 16},
        "site column, w4, 16 bins": {"site_column": "site", "target_weight": 4.0, "bins": 16},
        "site column, w4, 8 bins": {"site_column": "site", "target_weight": 4.0, "bins": 8},
        "site column, w1, 8 bins": {"site_column": "site", "target_weight": 1.0, "bins": 8},
        "site column + site pairs, w4, 8 bins": {"site_column": "site", "target_weight": 4.0, "bins": 8,
                                                 "site_pairs": True},
    },
    "aim": {
        "no site column, w1, 8 bins": {"site_column": None, "target_weight": 1.0, "bins": 8},
        "site column, w1, 8 bins": {"site_column": "site", "target_weight": 1.0, "bins": 8},
        "site column, w4, 8 bins": {"site_column": "site", "target_weight": 4.0, "bins": 8},
        "site column + site pairs, w1, 8 bins": {"site_column": "site", "target_weight": 1.0, "bins": 8,
                                                 "site_pairs": True},
    },
}


def federated_marginal_synthetic(job, schema, parts: dict, *, seed: int) -> dict:
    """The protocol run in-process (no Flower transport; the same site and server functions) and
    each site's synthetic rows: conditioned on site = s with a site column, else one pooled sample."""
    from dpsynth.federated.marginal import drive_locally, fit_generator

    server, _, _ = drive_locally(job, schema)
    gen = fit_generator(job, server, schema)
    return sample_per_site(gen, job.site_column, parts, seed=seed)


def sample_per_site(gen, site_column, parts: dict, *, seed: int) -> dict:
    """Site s's synthetic rows, as many as the model's training rows (the union of the sites'):
    P(rows | site = s) with a site column; without one, the same sample for every site (the model
    of the union)."""
    rng = np.random.default_rng(seed + 1)
    n = sum(len(p[0]) for p in parts.values())
    if not site_column:
        pooled = gen.sample(n, rng=rng).frame
        return {s: pooled for s in parts}
    return {s: gen.sample(n, conditions={site_column: s}, rng=rng).frame.drop(columns=[site_column]) for s in parts}


def run_validation(args) -> list[dict]:
    from dpsynth.data.schema import Schema
    from dpsynth.federated.marginal import MarginalJob

    schema = Schema.load(SCHEMA)
    folder = DATA / "ehr" / "uci_heart_disease"
    out = args.validation_out
    chosen = {(g, n) for g in args.generators for n in VALIDATION_GRID[g] if not args.settings or n in args.settings}
    kept = [r for r in (json.loads(out.read_text()) if out is not None and out.exists() else [])
            if (r["generator"], r["setting"]) not in chosen]  # rows of the settings not rerun stay
    rows = []
    for seed in args.seeds:
        outer = {s: split_site(schema.prepare(read_site(folder, s), source=s), seed=seed) for s in SITES}
        parts = {s: split_site(train, seed=1000 + seed) for s, (train, _) in outer.items()}  # inner train / validation
        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for s, (train, _) in parts.items():
                files[s] = str(Path(tmp) / f"{s}.csv")
                train.to_csv(files[s], index=False)
            for generator in args.generators:
                for eps in args.epsilons:
                    for name, setting in VALIDATION_GRID[generator].items():
                        if args.settings and name not in args.settings:
                            continue
                        t0 = time.perf_counter()
                        job = MarginalJob(generator=generator, schema_path=str(SCHEMA), epsilon=eps, delta=None,
                                          accountant="rdp", secure_mode=False, seed=seed,
                                          sites=tuple(files.items()), **setting)
                        syn = federated_marginal_synthetic(job, schema, parts, seed=seed)
                        scores = {s: tstr(train, syn[s], val, schema, seed=seed)[0] for s, (train, val) in parts.items()}
                        row = {"generator": generator, "epsilon": eps, "seed": seed, "setting": name, **setting,
                               "validation_auroc": scores, "seconds": round(time.perf_counter() - t0, 1),
                               "load": os.getloadavg()[0]}
                        print(json.dumps(row), flush=True)
                        rows.append(row)
                        if out is not None:
                            out.write_text(json.dumps(kept + rows, indent=2))
    return kept + rows


def write_validation_markdown(rows: list[dict], path: Path) -> None:
    frame = pd.DataFrame(rows)
    lines = ["# Federated marginal settings on validation rows (UCI Heart, four sites)", "",
             "Produced by `evaluation/bench_federated.py --validation`. Per seed, every site's training rows (the "
             "70% of the reported split) are split again 70/30 (seed 1000 + seed); the federated model is fitted "
             "on the inner 70% (protocol run in-process, same site and server functions as over Flower) and TSTR "
             "AUROC is scored on the inner 30%. The reported held-out rows are not read. n/a = the site's "
             "synthetic rows held < 3 rows of a class; 'mean (n/a = 0.5)' counts those as chance.", "",
             "| generator | epsilon | setting | seeds | mean (n/a = 0.5) | mean of scored | n/a | per site (mean over seeds) |",
             "|---|---|---|---|---|---|---|---|"]
    for (g, e, name), grp in frame.groupby(["generator", "epsilon", "setting"], sort=False):
        scores = pd.DataFrame(list(grp["validation_auroc"]))
        filled = scores.astype(float).fillna(0.5)
        per_site = ", ".join(f"{s} {v:.3f}" for s, v in scores.astype(float).mean().items())
        lines.append(f"| {g} | {e} | {name} | {grp['seed'].nunique()} | {filled.to_numpy().mean():.3f} | "
                     f"{np.nanmean(scores.astype(float).to_numpy()):.3f} | {int(scores.isna().sum().sum())} | {per_site} |")
    notes = path.with_name(path.stem + "_notes.md")
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    path.write_text("\n".join(lines) + "\n")


def run_images(args) -> dict:
    """PneumoniaMNIST in 3 unequal sites; a small CPU profile of dp-diffusion-image over Flower."""
    import torch

    from dpsynth.config import PrivacyConfig, build_generator
    from dpsynth.data.images import load_image_source
    from dpsynth.federated.config import FederatedConfig
    from dpsynth.federated.workflow import run_federated
    from dpsynth.metrics.image import downstream_utility
    from dpsynth.privacy.budget import Budget

    torch.set_num_threads(1)
    npz = DATA / "medmnist" / "pneumoniamnist.npz"
    raw = np.load(npz)
    x, y = raw["train_images"], raw["train_labels"]
    order = np.random.default_rng(args.seed).permutation(len(x))
    cuts = np.cumsum([int(0.5 * len(x)), int(0.3 * len(x))])
    site_idx = np.split(order, cuts)
    schema = load_image_source(npz, split="train").schema
    test = load_image_source(npz, split="test")
    train_all = load_image_source(npz, split="train")
    out = {"sites": [len(i) for i in site_idx], "params": IMAGE_PARAMS, "epsilon": args.image_epsilon,
           "rounds": args.image_rounds, "n_synthetic": args.image_samples}
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for j, idx in enumerate(site_idx):
            f = Path(tmp) / f"site{j + 1}.npz"
            np.savez(f, train_images=x[np.sort(idx)], train_labels=y[np.sort(idx)])
            files.append(f)
        schema_file = Path(tmp) / "schema.yaml"
        schema.save(schema_file)
        t0 = time.perf_counter()
        cfg = FederatedConfig(sites=tuple((f.stem, str(f)) for f in files), schema=str(schema_file),
                              generator="dp-diffusion-image", rounds=args.image_rounds, seed=args.seed,
                              params=IMAGE_PARAMS, privacy=PrivacyConfig(epsilon=args.image_epsilon))
        fed = run_federated(config=cfg, out=Path(tmp) / "fed_img", overwrite=True)
        rng = np.random.default_rng(args.seed + 1)
        syn = fed.generator.sample(args.image_samples, rng=rng).to_image_data()
        out["federated_seconds"] = round(time.perf_counter() - t0, 1)
        out["site_epsilons"] = {k: round(v.epsilon(), 4) for k, v in fed.site_ledgers.items()}
        util, real_cnn = downstream_utility(train_all, syn, test, n_classes=schema.n_classes,
                                            rng=np.random.default_rng(0), epochs=args.cnn_epochs, repeats=1)
        out["federated"] = util.breakdown
        print("images federated", json.dumps(out, default=str), flush=True)
        if args.image_skip_pooled:
            return out
        t0 = time.perf_counter()
        gen = build_generator("dp-diffusion-image", IMAGE_PARAMS)
        rng = np.random.default_rng(args.seed)
        gen.fit(train_all, budget=Budget(epsilon=args.image_epsilon), rng=rng)
        syn_pooled = gen.sample(args.image_samples, rng=rng).to_image_data()
        out["pooled_seconds"] = round(time.perf_counter() - t0, 1)
        out["pooled"] = downstream_utility(train_all, syn_pooled, test, n_classes=schema.n_classes,
                                           rng=np.random.default_rng(0), epochs=args.cnn_epochs, repeats=1,
                                           real_model=real_cnn)[0].breakdown
        print("images pooled", json.dumps(out["pooled"], default=str), flush=True)
    return out


def write_markdown(rows: list[dict], images: dict | None, path: Path, args) -> None:
    lines = ["# Federated DP training across hospitals (Flower): federated vs each site alone vs pooled", "",
             "Produced by `evaluation/bench_federated.py` (internal evaluation: scores against real held-out rows).",
             "TSTR AUROC on each site's held-out 30% (classifier chosen by CV on synthetic rows only); TRTR = "
             "trained on the site's own real training rows. Every site's ledger is at the target epsilon; the "
             "released epsilon of the federated model is the maximum over sites. Pooled is the unrealistic "
             "upper bound (the rows cannot be pooled). Seeds per row below (each seed re-splits and refits); "
             "means are over sites and seeds. The federated marginal settings (mst/aim defaults of `dpsynth federated`) were "
             "chosen on validation rows inside each site's training rows (`federated_validation.md`); nothing was "
             "chosen on the held-out rows reported here.", ""]
    if rows:
        lines += ["Federated marginal rows (mst, aim) with a site column sample each site's rows conditioned on "
                  "site = s (`site column` below: the model's site column, `-` = one model of the union, the same "
                  "sample scored at every site).", "",
                  "| generator | epsilon | seed | site | train / test rows (test positives) | federated | site alone | "
                  "pooled | TRTR (site's real rows) | site column |", "|---|---|---|---|---|---|---|---|---|---|"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        for r in rows:
            lines.append(f"| {r['generator']} | {r['epsilon']} | {r.get('seed', 0)} | {r['site']} | {r['n_train']} / {r['n_test']} "
                         f"({r['test_positives']}) | {fmt(r['federated'])} | {fmt(r['local'])} | {fmt(r['pooled'])} | "
                         f"{fmt(r['trtr_site'])} | {r.get('federated_site_column') or '-'} |")
        lines += ["", "Mean over the four sites (and seeds); worst site alone = the lowest site-alone score, mean over "
                  "seeds:", "", "| generator | epsilon | seeds | federated | site alone | worst site alone | pooled | TRTR |",
                  "|---|---|---|---|---|---|---|---|"]
        frame = pd.DataFrame(rows)
        frame["seed"] = frame.get("seed", 0)
        for col in ("federated", "local", "pooled", "trtr_site"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
        for (g, e), grp in frame.groupby(["generator", "epsilon"], sort=False):
            worst = grp.groupby("seed")["local"].min().mean()
            lines.append(f"| {g} | {e} | {grp['seed'].nunique()} | {grp['federated'].mean():.3f} | "
                         f"{grp['local'].mean():.3f} | {worst:.3f} | {grp['pooled'].mean():.3f} | "
                         f"{grp['trtr_site'].mean():.3f} |")
        secs = {(r["generator"], r["epsilon"]): {**r["seconds"], "rounds": r.get("rounds", 3)} for r in rows}
        lines += ["", "Wall time (2 shared cores, other jobs running; last seed): " + "; ".join(
            f"{g} eps {e}: federated {s['federated_all_sites']} s (4 sites, {s['rounds']} rounds, Flower simulation), "
            f"pooled {s['pooled']} s" for (g, e), s in secs.items()), ""]
    if images:
        lines += ["## Images: PneumoniaMNIST in 3 unequal sites", "",
                  f"Sites of {images['sites']} training images (50/30/20%), dp-diffusion-image small CPU profile "
                  f"{json.dumps(images['params'])}, epsilon {images['epsilon']} per site, {images['rounds']} rounds, "
                  f"{images['n_synthetic']} synthetic images; TSTR of a small CNN on the official test split.", ""]
        for key in ("federated", "pooled"):
            if key in images:
                b = images[key]
                lines.append(f"- {key}: {json.dumps(b, default=str)[:600]} ({images.get(key + '_seconds')} s)")
        lines += [f"- site epsilons: {images.get('site_epsilons')}", ""]
    notes = path.with_name(path.stem + "_notes.md")  # hand-written notes on the runs, kept across regenerations
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generators", nargs="+", default=["dp-gan"], choices=sorted(PARAMS))
    p.add_argument("--epsilons", nargs="+", type=float, default=[4.0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="each seed re-splits the sites and refits")
    p.add_argument("--images", action="store_true", help="also run the PneumoniaMNIST image federation")
    p.add_argument("--images-only", action="store_true")
    p.add_argument("--image-epsilon", type=float, default=10.0)
    p.add_argument("--image-rounds", type=int, default=2)
    p.add_argument("--image-samples", type=int, default=600)
    p.add_argument("--cnn-epochs", type=int, default=3)
    p.add_argument("--image-skip-pooled", action="store_true", help="images: federated only (CPU-bound runs)")
    p.add_argument("--out", type=Path, default=RESULTS / "federated")
    p.add_argument("--validation", action="store_true",
                   help="compare the federated marginal settings (VALIDATION_GRID) on validation rows only")
    p.add_argument("--regenerate", action="store_true", help="rewrite the .md from the .json (+ _notes.md), no runs")
    p.add_argument("--settings", nargs="*", default=None, help="--validation: only these settings (names)")
    p.add_argument("--validation-out", type=Path, default=RESULTS / "federated_validation.json")
    args = p.parse_args()
    if not DATA.exists():
        sys.exit(f"real data folder {DATA} is absent (set DPSYNTH_SHARED_DATA)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path = args.out.with_suffix(".json")
    previous = json.loads(json_path.read_text()) if json_path.exists() else {}

    def save(rows, images=None):
        done = {(r["generator"], r["epsilon"]) for r in rows}
        kept = [r for r in previous.get("tables", []) if (r["generator"], r["epsilon"]) not in done]
        payload = {"tables": kept + rows, "images": images or previous.get("images")}
        json_path.write_text(json.dumps(payload, indent=2, default=str))
        write_markdown(payload["tables"], payload["images"], args.out.with_suffix(".md"), args)
        print(f"wrote {args.out.with_suffix('.md')}", flush=True)

    if args.regenerate:
        payload = json.loads(json_path.read_text())
        write_markdown(payload["tables"], payload.get("images"), args.out.with_suffix(".md"), args)
        print(f"wrote {args.out.with_suffix('.md')}", flush=True)
        return
    if args.validation:
        rows = run_validation(args)
        write_validation_markdown(rows, args.validation_out.with_suffix(".md"))
        print(f"wrote {args.validation_out.with_suffix('.md')}", flush=True)
        return
    rows = [] if args.images_only else run_tables(args, save=save)
    images = run_images(args) if (args.images or args.images_only) else None
    save(rows, images)


if __name__ == "__main__":
    main()
