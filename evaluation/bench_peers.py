"""Benchmark: dpsynth against its peers, side by side on the same data and splits.

Every (method, epsilon, seed) cell is fitted in its own subprocess (the peer's own virtualenv for
synthcity and smartnoise-synth), which reads the training split from CSV and writes the synthetic CSV
and its timings (fit, sample, peak RSS of that process). The synthetic rows are mapped back to the
public schema (out-of-domain values clipped and counted) and scored here with dpsynth's metrics:
TSTR AUROC on the real test split (classifier chosen by CV on the synthetic side only), mean column
shape distance (TVD for categorical, KS for numeric; the mean TVD is given separately) and the
pairwise association difference. Finished cells are cached in results/cache/peers_<dataset>.json, so a
killed run continues where it stopped; results/peers_<dataset>.{md,json,png} are rewritten after
every cell.

    python evaluation/bench_peers.py --setup-peers            # only create evaluation/.venvs/{synthcity,smartnoise}
    python evaluation/bench_peers.py                          # everything: actg175 + diabetes130, eps 0.5 1 4 8, seeds 0 1 2
    python evaluation/bench_peers.py --datasets actg175 --methods dpsynth:aim synthcity:aim --epsilons 1 --seeds 0
    python evaluation/bench_peers.py --quick                  # tiny settings, one seed, eps 1 (smoke test)

Method names: dpsynth:{dp-gan,dp-diffusion,aim,aim-paper,mst,independent} (aim-paper: the paper's
uniform workload, untuned), synthcity:{dpgan,pategan,aim,privbayes},
smartnoise:{mst,aim,dpctgan,patectgan}, sdv:{ctgan,gaussiancopula} (non-private, epsilon = inf).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))

from datasets import from_peer_frame, load_dataset, peer_spec, splits_for, to_peer_frame  # noqa: E402

RESULTS = HERE / "results"
CACHE = RESULTS / "cache"
VENVS = HERE / ".venvs"
PEERS = HERE / "peers"

DPSYNTH = ["dp-gan", "dp-diffusion", "aim", "aim-paper", "mst", "independent"]
METHODS = ([f"dpsynth:{m}" for m in DPSYNTH] + ["sdv:ctgan", "sdv:gaussiancopula"]
           + [f"synthcity:{m}" for m in ("dpgan", "pategan", "aim", "privbayes")]
           + [f"smartnoise:{m}" for m in ("mst", "aim", "dpctgan", "patectgan")])

# Where each method gets its domain facts (bounds, category lists) from. "data" = a privacy leak of the
# peer as run here (not charged to its epsilon).
BOUNDS = {
    "dpsynth": "public schema (bounds, categories); nothing read from the data",
    "sdv": "training data (min/max, categories): non-private reference",
    "synthcity:dpgan": "LEAK: synthcity's TabularEncoder fits scalers/category lists on the training data",
    "synthcity:pategan": "LEAK: synthcity's TabularEncoder fits scalers/category lists on the training data",
    "synthcity:aim": "numerics cut into public-bound bins by us; LEAK: the plugin builds its domain from the values present",
    "synthcity:aim-b5": "as synthcity:aim, 5 bins per numeric column (the AIM mechanism runs inside generate())",
    "synthcity:privbayes": "numerics cut into public-bound bins by us; LEAK: the plugin builds its domain from the values present",
    "smartnoise:mst": "numerics cut into public-bound bins by us; categories passed as categorical columns (domain from the values present)",
    "smartnoise:aim": "numerics cut into public-bound bins by us; categories passed as categorical columns (domain from the values present)",
    "smartnoise:dpctgan": "public bounds passed to MinMaxTransformer; categories from the data (LEAK)",
    "smartnoise:patectgan": "public bounds passed to MinMaxTransformer; categories from the data (LEAK)",
}

SYNTHCITY_REQS = [
    "numpy==1.26.4", "torch==2.13.0", "scikit-learn==1.7.2", "pandas>=2.1,<3", "nflows", "lifelines>=0.29,<0.30",
    "opacus==1.5.4", "networkx>2,<3", "optuna", "tenacity", "tqdm", "loguru", "pydantic>=2", "cloudpickle", "scipy",
    "xgboost-cpu<3", "pgmpy<1.0", "geomloss", "importlib-metadata", "shap", "redis",
]
SYNTHCITY_NODEPS = ["monai==1.4.0", "tsai", "fastai<2.8", "fastcore<1.8", "fastprogress==1.0.3", "fastdownload",
                    "fasttransform", "plum-dispatch", "beartype", "rich", "psutil", "torchtuples", "pycox", "h5py",
                    "xgbse"]
SMARTNOISE_REQS = ["numpy<2", "torch==2.13.0", "pandas<3", "scikit-learn", "packaging", "smartnoise-synth==1.0.8"]


# ---- peer virtualenvs ---------------------------------------------------------------------------

def venv_python(family: str) -> Path:
    if family in ("dpsynth", "sdv"):
        return Path(sys.executable)
    return VENVS / family / "bin" / "python"


def _pip(venv: Path, *args: str) -> None:
    cmd = [str(venv / "bin" / "pip"), "install", "-q", *args]
    print("  $", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def setup_peers(families=("synthcity", "smartnoise")) -> None:
    """Create the peer virtualenvs (see shared/ENVIRONMENT.md for why each is separate)."""
    for family in families:
        venv = VENVS / family
        if (venv / ".ready").exists():
            print(f"{family}: {venv} ready")
            continue
        print(f"{family}: creating {venv}", flush=True)
        if not (venv / "bin" / "pip").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        try:
            if family == "synthcity":
                # synthcity 0.2.12 pins torch<2.3 / numpy<2: install it without deps, then its runtime needs
                _pip(venv, "torch==2.13.0", "numpy==1.26.4", "scikit-learn==1.7.2", "pandas>=2.1,<3")
                _pip(venv, "--no-deps", "synthcity==0.2.12")
                _pip(venv, *SYNTHCITY_REQS)
                # pgmpy pulls xgboost 3.x (CUDA libs, and synthcity wants <3): keep the CPU-only 2.x build
                subprocess.run([str(venv / "bin" / "pip"), "uninstall", "-y", "-q", "xgboost"], check=False)
                _pip(venv, "--no-deps", "--force-reinstall", "xgboost-cpu<3")
                # modules synthcity imports at plugin-import time (its full requirement list pulls CUDA
                # torchvision, transformers, ...): installed without their dependencies
                _pip(venv, "--no-deps", *SYNTHCITY_NODEPS)
                _stub_torchvision(venv)
                check = "from synthcity.plugins.privacy import plugin_dpgan, plugin_pategan, plugin_aim, plugin_privbayes"
            else:
                _pip(venv, *SMARTNOISE_REQS)
                check = "import snsynth; from snsynth import Synthesizer"
            subprocess.run([str(venv / "bin" / "python"), "-c", check], check=True)
            (venv / ".ready").write_text("ok\n")
            print(f"{family}: ready", flush=True)
        except subprocess.CalledProcessError as exc:
            print(f"{family}: setup FAILED: {exc}", flush=True)


def _stub_torchvision(venv: Path) -> None:
    """synthcity's dataloader does `from torchvision import transforms` at import time (used only by its
    image plugins); every torchvision wheel here is a CUDA build that fails against torch 2.13.0+cpu. So
    the peer venv gets a stub `torchvision` package whose attributes raise only when actually used."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    pkg = site / "torchvision"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text(TORCHVISION_STUB)


TORCHVISION_STUB = '''"""Stub torchvision (dpsynth bench_peers): any attribute or submodule import succeeds; using one raises."""
import importlib.abc, importlib.machinery, sys, types

__version__ = "0.0.0+stub"


class _Unavailable:
    def __init__(self, *a, **k):
        raise ImportError("torchvision stub: image features are unavailable in this peer venv")

    def __class_getitem__(cls, item):
        return cls


class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Unavailable


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _Module(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Unavailable
'''


# ---- one cell -----------------------------------------------------------------------------------

def run_cell(method: str, eps: float, seed: int, *, train_csv: Path, spec_path: Path, n: int, quick: bool,
             timeout: float, workdir: Path) -> dict:
    family, name = method.split(":", 1)
    py = venv_python(family)
    cell = {"method": method, "epsilon": eps, "seed": seed, "bounds": BOUNDS.get(method, BOUNDS.get(family))}
    if not py.exists():
        return {**cell, "status": "error", "error": f"peer virtualenv missing: {py} (run --setup-peers)"}
    runner = PEERS / f"run_{family}.py"
    out = workdir / f"{family}_{name}_{eps}_{seed}"
    cmd = [str(py), str(runner), "--method", name, "--epsilon", str(eps), "--seed", str(seed),
           "--train", str(train_csv), "--spec", str(spec_path), "--out", str(out), "--n", str(n)]
    if quick:
        cmd.append("--quick")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": str(PEERS), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**cell, "status": "timeout", "error": f"no result within {timeout:.0f} s", "wall_s": timeout}
    cell["wall_s"] = time.perf_counter() - start
    if proc.returncode != 0 or not (out / "timings.json").exists():
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        err = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "?")
        return {**cell, "status": "error", "error": err.strip()[:400], "returncode": proc.returncode}
    timings = json.loads((out / "timings.json").read_text())
    peer = pd.read_csv(out / "synthetic.csv", keep_default_na=False, na_values=[""], dtype=str)
    cell.update(timings)
    cell["sample_rows_per_s"] = timings["rows"] / timings["sample_s"] if timings["sample_s"] > 0 else None
    cell["_synthetic"] = peer
    cell["status"] = "ok"
    return cell


def score(cell: dict, splits, schema, target: str) -> dict:
    from dpsynth.metrics.fidelity import AssociationDifference, ColumnShapes
    from dpsynth.metrics.utility import TSTRAbsoluteAUROC

    peer = cell.pop("_synthetic")
    try:
        syn, ood = from_peer_frame(peer, schema)
    except Exception as exc:  # noqa: BLE001 - report, do not crash the sweep
        return {**cell, "status": "error", "error": f"mapping to schema failed: {exc}"[:400]}
    cell["out_of_domain"] = ood
    cell["out_of_domain_total"] = int(sum(ood.values()))
    try:
        tstr = TSTRAbsoluteAUROC(target=target).evaluate(splits.train, splits.holdout, syn, schema, test=splits.test,
                                                         rng=np.random.default_rng(0))
        cell["tstr_auroc"] = float(tstr.value)
        cell["tstr_model"] = tstr.breakdown["tstr"]["selected"].get("family")
    except Exception as exc:  # noqa: BLE001 - e.g. a single-class synthetic target
        cell["tstr_auroc"] = None
        cell["tstr_error"] = str(exc)[:200]
    shapes = ColumnShapes().evaluate(splits.train, splits.holdout, syn, schema)
    cell["column_shapes"] = float(shapes.value)
    cell["mean_tvd"] = shapes.breakdown["mean_tvd"]
    cell["mean_ks"] = shapes.breakdown["mean_ks"]
    cell["assoc_diff"] = float(AssociationDifference().evaluate(splits.train, splits.holdout, syn, schema).value)
    cell["status"] = "ok"
    return cell


# ---- results ------------------------------------------------------------------------------------

def key(method: str, eps: float, seed: int) -> str:
    return f"{method}|{eps:g}|{seed}"


def aggregate(cells: dict) -> list[dict]:
    groups: dict[tuple, list] = {}
    for c in cells.values():
        groups.setdefault((c["method"], c["epsilon"]), []).append(c)
    order = {m: i for i, m in enumerate(METHODS)}
    rows = []
    for (method, eps), cs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        ok = [c for c in cs if c.get("status") == "ok"]
        row = {"method": method, "epsilon": eps, "seeds": sorted(c["seed"] for c in cs), "n_ok": len(ok),
               "bounds": cs[0].get("bounds"),
               "failures": sorted({f"{c['status']}: {c.get('error', '')}" for c in cs if c.get("status") != "ok"})}
        for m in ("tstr_auroc", "column_shapes", "mean_tvd", "assoc_diff", "fit_s", "sample_s", "peak_rss_mb",
                  "sample_rows_per_s", "out_of_domain_total"):
            vals = [c[m] for c in ok if c.get(m) is not None]
            row[m] = float(np.mean(vals)) if vals else None
            row[m + "_std"] = float(np.std(vals)) if vals else None
        oods = {}
        for c in ok:
            for col, k in (c.get("out_of_domain") or {}).items():
                oods[col] = oods.get(col, 0) + k
        row["out_of_domain_columns"] = oods
        rows.append(row)
    return rows


def _f(v, std=None, fmt="{:.3f}"):
    if v is None:
        return "-"
    s = fmt.format(v)
    return s + (" ± " + fmt.format(std) if std is not None else "")


def targets(rows: list[dict], trtr: float | None, sampling: dict | None) -> list[str]:
    lines = []
    at1 = {r["method"]: r for r in rows if r["epsilon"] == 1.0 and r["tstr_auroc"] is not None}
    ours = {m: r for m, r in at1.items() if m.startswith("dpsynth:")}
    peers = {m: r for m, r in at1.items() if not m.startswith("dpsynth:")}
    if ours and trtr:
        best = max(ours.values(), key=lambda r: r["tstr_auroc"])
        ratio = best["tstr_auroc"] / trtr
        lines.append(f"- eps=1: best dpsynth generator {best['method']} TSTR {best['tstr_auroc']:.3f} = "
                     f"{ratio:.3f} x TRTR ({trtr:.3f}); target >= 0.97: {'MET' if ratio >= 0.97 else 'NOT met'}")
        if peers:
            bp = max(peers.values(), key=lambda r: r["tstr_auroc"])
            lines.append(f"- eps=1: best peer {bp['method']} TSTR {bp['tstr_auroc']:.3f}; dpsynth best >= every peer: "
                         f"{'MET' if best['tstr_auroc'] >= bp['tstr_auroc'] else 'NOT met'}")
    for eps in sorted({r["epsilon"] for r in rows}):
        a = next((r for r in rows if r["method"] == "dpsynth:aim" and r["epsilon"] == eps), None)
        for peer in ("synthcity:aim", "synthcity:aim-b5"):
            b = next((r for r in rows if r["method"] == peer and r["epsilon"] == eps), None)
            if a and b and a["fit_s"] and b["fit_s"] and a["tstr_auroc"] is not None and b["tstr_auroc"] is not None:
                # synthcity's AIM runs its mechanism inside generate(): compare fit + sample on both sides
                ta, tb = a["fit_s"] + a["sample_s"], b["fit_s"] + b["sample_s"]
                ok = tb / ta >= 3 and a["tstr_auroc"] >= b["tstr_auroc"]
                lines.append(f"- eps={eps:g}: dpsynth aim fit+sample {ta:.1f}s vs {peer} {tb:.1f}s (synthcity does "
                             f"the AIM work in generate(); speed-up {tb / ta:.1f}x), TSTR {a['tstr_auroc']:.3f} vs "
                             f"{b['tstr_auroc']:.3f}; target >=3x at equal/better TSTR: {'MET' if ok else 'NOT met'}")
            elif a and b and b["n_ok"] == 0:
                lines.append(f"- eps={eps:g}: {peer} produced no result ({'; '.join(b['failures'])}); "
                             f"dpsynth aim fit {_f(a['fit_s'], fmt='{:.1f}')} s")
    if sampling:
        lines.append(f"- sampling (bench_sampling.py): {sampling.get('summary', '')}")
    return lines


def write_results(dataset: str, note: str, cells: dict, trtr: float | None, command: str) -> None:
    rows = aggregate(cells)
    sampling_path = RESULTS / "bench_sampling.json"
    sampling = json.loads(sampling_path.read_text()) if sampling_path.exists() and dataset == "actg175" else None
    clean = {k: v for k, v in cells.items()}
    (RESULTS / f"peers_{dataset}.json").write_text(json.dumps(
        {"dataset": dataset, "data": note, "trtr_auroc": trtr, "command": command,
         "machine": "shared 2-core CPU box, one thread per fit (wall times inflated by other load)",
         "rows": rows, "cells": clean}, indent=1, default=str))
    md = [f"# Peers benchmark: {dataset}", "", f"Data: {note}. Same split for every method (SplitSpec(seed=0)); "
          f"synthetic rows = training rows. TRTR AUROC (CV-selected model) = {_f(trtr)}.", "",
          "Mean ± std over the seeds that finished (n ok / seeds run). TSTR = AUROC on the real test split of the "
          "classifier chosen by CV on the synthetic side. Shapes = mean per-column distance (TVD categorical, KS "
          "numeric); TVD = mean TVD of categorical columns; Assoc = mean |association difference|. Fit/sample in "
          "wall seconds on a shared 2-core box (one thread); RSS = peak RSS of the fitting subprocess (includes "
          "its interpreter and imports). OOD = synthetic values outside the public domain, clipped (mean per run).",
          "", "| method | epsilon | ok | TSTR AUROC | TSTR/TRTR | Shapes | TVD | Assoc | fit (s) | sample (s) | "
          "peak RSS (MB) | OOD |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["tstr_auroc"] / trtr if (trtr and r["tstr_auroc"] is not None) else None
        eps_s = "inf (non-private)" if math.isinf(r["epsilon"]) else f"{r['epsilon']:g}"
        md.append(f"| {r['method']} | {eps_s} | "
                  f"{r['n_ok']}/{len(r['seeds'])} | {_f(r['tstr_auroc'], r['tstr_auroc_std'])} | {_f(ratio)} | "
                  f"{_f(r['column_shapes'], r['column_shapes_std'])} | {_f(r['mean_tvd'])} | "
                  f"{_f(r['assoc_diff'], r['assoc_diff_std'])} | {_f(r['fit_s'], r['fit_s_std'], '{:.1f}')} | "
                  f"{_f(r['sample_s'], None, '{:.2f}')} | {_f(r['peak_rss_mb'], None, '{:.0f}')} | "
                  f"{_f(r['out_of_domain_total'], None, '{:.1f}')} |")
    md += ["", "## Issue targets (measured, not asserted)", ""] + (targets(rows, trtr, sampling) or ["- (not enough cells yet)"])
    fails = [(r["method"], r["epsilon"], f) for r in rows for f in r["failures"]]
    if fails:
        md += ["", "## Failures", ""] + [f"- {m} eps={e:g}: {f}" for m, e, f in fails]
    ood = [(r["method"], r["epsilon"], r["out_of_domain_columns"]) for r in rows if r["out_of_domain_columns"]]
    if ood:
        md += ["", "## Out-of-domain values (summed over seeds; clipped / replaced before scoring)", ""]
        md += [f"- {m} eps={e:g}: {d}" for m, e, d in ood]
    methods = sorted({r["method"] for r in rows}, key=lambda m: METHODS.index(m) if m in METHODS else 99)
    md += ["", "## Where each method reads its domain (bounds, categories) from", ""]
    md += [f"- {m}: {next(r['bounds'] for r in rows if r['method'] == m)}" for m in methods]
    md += ["", f"Command: `{command}`"]
    (RESULTS / f"peers_{dataset}.md").write_text("\n".join(md) + "\n")
    plot(dataset, rows, trtr)


def plot(dataset: str, rows: list[dict], trtr: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    methods = sorted({r["method"] for r in rows}, key=lambda m: METHODS.index(m) if m in METHODS else 99)
    for m in methods:
        pts = [r for r in rows if r["method"] == m and r["tstr_auroc"] is not None]
        fin = sorted((r for r in pts if not math.isinf(r["epsilon"])), key=lambda r: r["epsilon"])
        style = "-" if m.startswith("dpsynth:") else "--"
        if fin:
            ax.errorbar([r["epsilon"] for r in fin], [r["tstr_auroc"] for r in fin],
                        yerr=[r["tstr_auroc_std"] for r in fin], label=m, marker="o", capsize=3, linestyle=style)
        for r in pts:
            if math.isinf(r["epsilon"]):
                ax.axhline(r["tstr_auroc"], linestyle=":", color="grey" if "gaussian" in m else "tab:brown",
                           label=f"{m} (non-private) {r['tstr_auroc']:.3f}")
    if trtr:
        ax.axhline(trtr, color="black", linewidth=1.5, label=f"TRTR {trtr:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("epsilon")
    ax.set_ylabel("TSTR AUROC (real test split)")
    ax.set_title(f"{dataset}: utility vs epsilon (mean ± std over seeds)")
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(RESULTS / f"peers_{dataset}_utility_vs_epsilon.png", dpi=120)
    plt.close(fig)


# ---- main ---------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["actg175", "diabetes130"])
    parser.add_argument("--methods", nargs="+", default=METHODS,
                        help="method names, or a family prefix such as 'synthcity' (= all its methods)")
    parser.add_argument("--epsilons", nargs="+", type=float, default=[0.5, 1.0, 4.0, 8.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="tiny settings (2 epochs etc.), eps 1, seed 0")
    parser.add_argument("--setup-peers", action="store_true", help="only create the peer virtualenvs")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per cell before 'timeout'")
    parser.add_argument("--diabetes-rows", type=int, default=20_000, help="uniform subsample of patients (0 = all)")
    parser.add_argument("--retry-failed", action="store_true", help="rerun cached error/timeout cells")
    args = parser.parse_args()
    if args.setup_peers:
        setup_peers()
        return
    methods = []
    for m in args.methods:
        methods += [x for x in METHODS if x == m or x.split(":")[0] == m] or [m]
    if args.quick:
        args.epsilons, args.seeds, args.timeout = [1.0], [0], min(args.timeout, 300)
    import torch

    torch.set_num_threads(1)
    from dpsynth.metrics.utility import TSTRAbsoluteAUROC

    command = "python evaluation/bench_peers.py " + " ".join(sys.argv[1:])
    CACHE.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        loaded = load_dataset(dataset, diabetes_rows=args.diabetes_rows)
        if loaded is None:
            continue
        frame, schema, target, note = loaded
        splits = splits_for(frame)
        tag = f"{dataset}{'_quick' if args.quick else ''}"
        cache_path = CACHE / f"peers_{tag}.json"
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {"cells": {}}
        if cache.get("trtr_auroc") is None:
            res = TSTRAbsoluteAUROC(target=target).evaluate(splits.train, splits.holdout, splits.train, schema,
                                                            test=splits.test, rng=np.random.default_rng(0))
            cache["trtr_auroc"] = float(res.breakdown["trtr"]["selected"]["auroc"])
        trtr = cache["trtr_auroc"]
        print(f"== {dataset}: {note}; train {len(splits.train)}, holdout {len(splits.holdout)}, "
              f"test {len(splits.test)}; TRTR AUROC ({target}) = {trtr:.3f}", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp:
            tmp = Path(tmp)
            spec_path, train_csv = tmp / "spec.json", tmp / "train.csv"
            spec_path.write_text(json.dumps(peer_spec(schema, target)))
            to_peer_frame(splits.train, schema).to_csv(train_csv, index=False)
            for method in methods:
                eps_list = [math.inf] if method.startswith("sdv:") else args.epsilons
                for eps in eps_list:
                    for seed in args.seeds:
                        k = key(method, eps, seed)
                        old = cache["cells"].get(k)
                        if old and (old["status"] == "ok" or not args.retry_failed):
                            continue
                        cell = run_cell(method, eps, seed, train_csv=train_csv, spec_path=spec_path,
                                        n=len(splits.train), quick=args.quick, timeout=args.timeout, workdir=tmp)
                        if cell["status"] == "ok":
                            cell = score(cell, splits, schema, target)
                        # merge with what other runs (e.g. a parallel one on other methods) wrote meanwhile
                        disk = json.loads(cache_path.read_text()) if cache_path.exists() else {"cells": {}}
                        disk["cells"].update(cache["cells"] if not disk["cells"] else {})
                        disk["cells"][k] = cell
                        disk["trtr_auroc"] = trtr
                        cache = disk
                        tmp_path = cache_path.with_suffix(f".{os.getpid()}.tmp")
                        tmp_path.write_text(json.dumps(cache, default=str))
                        tmp_path.replace(cache_path)
                        if cell["status"] == "ok":
                            print(f"{method:22s} eps={eps:<4g} seed={seed} TSTR {_f(cell['tstr_auroc'])} "
                                  f"shapes {cell['column_shapes']:.3f} assoc {cell['assoc_diff']:.3f} "
                                  f"fit {cell['fit_s']:.1f}s sample {cell['sample_s']:.2f}s "
                                  f"RSS {cell['peak_rss_mb']:.0f}MB OOD {cell['out_of_domain_total']}", flush=True)
                        else:
                            print(f"{method:22s} eps={eps:<4g} seed={seed} {cell['status'].upper()}: "
                                  f"{cell.get('error')}", flush=True)
                        write_results(tag, note, cache["cells"], trtr, command)
        write_results(tag, note, cache["cells"], trtr, command)


if __name__ == "__main__":
    main()
