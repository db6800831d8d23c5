"""Tables of the image benchmark (bench_images.py / rescore_images.py JSON files): one row per
run, then mean ± sd over seeds per (set, epsilon, start), with issue 12's targets.

    python evaluation/summarise_images.py evaluation/results/images/i12c/*_rescored-min600.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "evaluation"))

from bench_images import TARGETS  # noqa: E402


def row(r: dict) -> dict:
    m = r["metrics"]
    util = m["image_downstream_accuracy"]["breakdown"]
    h = util["honest"]
    prdc = m["image_prdc_coverage"]["breakdown"]
    sched = r.get("schedule") or {}
    start = "pretrained" if r.get("pretrained") else "scratch"
    if r.get("generator", "dp-diffusion-image") != "dp-diffusion-image":
        start = f"{r['generator']}, {start}"
    plan = f"{sched.get('steps', '?')} x {(sched.get('schedule') or {}).get('batch_size', '?')}"
    if "n_frequencies" in sched:  # dp-merf-image: one Gaussian release, no DP-SGD
        plan = f"1 release, F {sched['n_frequencies']}, res {sched['feature_resolution']}"
    return {
        "dataset": r["dataset"], "epsilon_target": float(r["epsilon_target"]), "epsilon": r["epsilon"],
        "start": start, "seed": r["seed"],
        "split": r.get("eval_split", "test"), "tag": (r.get("params") or {}).get("steps"),
        "steps_x_batch": plan,
        "sigma": sched.get("noise_multiplier"),
        "syn_bal": h["synthetic"]["balanced_accuracy"], "real_bal": h["real"]["balanced_accuracy"],
        "maj_bal": h["majority"]["balanced_accuracy"], "ratio": h["balanced_accuracy_ratio"],
        "verdict": h["verdict"], "note": h.get("note"),
        "recall_syn": "/".join(f"{v:.2f}" for v in h["synthetic"]["per_class_recall"].values()),
        "recall_real": "/".join(f"{v:.2f}" for v in h["real"]["per_class_recall"].values()),
        "auroc_syn": util["synthetic_auroc"], "auroc_real": util["real_auroc"],
        "dfid": m["image_domain_fid"]["value"],
        "prdc": f"{prdc['precision']:.2f} / {prdc['recall']:.2f} / {prdc['density']:.2f} / {prdc['coverage']:.2f}",
        "fit_s": r.get("fit_s"), "wall_s": r.get("wall_s"), "grid": r.get("grid"),
        "cnn": f"{util.get('repeats')} x min {util.get('min_steps', 0)} steps",
    }


def _ms(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    rows = [row(r) for f in args.files for r in json.loads(Path(f).read_text())]
    rows.sort(key=lambda r: (r["dataset"], -r["epsilon_target"], r["start"], r["split"], r["seed"]))
    print("| set | eps (spent) | start | split | seed | DP steps x batch (sigma) | bal. acc syn / real / maj | ratio |"
          " verdict | recall syn ; real | AUROC syn / real | domain FID | P / R / D / C | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sigma = f" ({r['sigma']:.3f})" if r["sigma"] else ""
        print(f"| {r['dataset']} | {r['epsilon_target']:g} ({r['epsilon']:.3f}) | {r['start']} | {r['split']} | {r['seed']}"
              f" | {r['steps_x_batch']}{sigma} | {r['syn_bal']:.3f} / {r['real_bal']:.3f} / {r['maj_bal']:.3f}"
              f" | {r['ratio']:.3f} | {r['verdict']}{' (real CNN at majority)' if r['note'] else ''}"
              f" | {r['recall_syn']} ; {r['recall_real']} | {r['auroc_syn']:.3f} / {r['auroc_real']:.3f}"
              f" | {r['dfid']:.3g} | {r['prdc']} | {r['fit_s']:.0f} |")
    groups, pooled = defaultdict(list), defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["epsilon_target"], r["start"], r["split"], r["steps_x_batch"])].append(r)
        pooled[(r["dataset"], r["split"], r["cnn"])].append(r["real_bal"])
    print("\nPooled real reference = mean balanced accuracy of every real-trained CNN of that set and split in these"
          " files (the same real images and recipe; one run's real CNNs move by several points with their seeds):")
    for (ds, split, cnn), values in pooled.items():
        print(f"- {ds} ({split}, CNN {cnn}): {_ms(values)} over {len(values)} runs")
    print("\n| set | eps | start | split | DP steps x batch | seeds | bal. acc syn | real (same runs) | ratio (mean ± sd) |"
          " syn / pooled real | target | verdicts |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (ds, eps, start, split, sxb), rs in groups.items():
        target = TARGETS.get((ds, eps))
        ratios = [r["ratio"] for r in rs]
        mean_ratio = statistics.mean(ratios)
        pool = statistics.mean(pooled[(ds, split, rs[0]["cnn"])])
        to_pool = statistics.mean(r["syn_bal"] for r in rs) / pool
        met = "" if target is None or split != "test" else (
            f"{target:g}: {'met' if mean_ratio >= target else 'MISSED'} (mean ratio),"
            f" {'met' if to_pool >= target else 'MISSED'} (pooled)")
        print(f"| {ds} | {eps:g} | {start} | {split} | {sxb} | {', '.join(str(r['seed']) for r in rs)}"
              f" | {_ms([r['syn_bal'] for r in rs])} | {_ms([r['real_bal'] for r in rs])} | {_ms(ratios)}"
              f" | {to_pool:.3f} | {met}"
              f" | {' '.join(r['verdict'] for r in rs)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
