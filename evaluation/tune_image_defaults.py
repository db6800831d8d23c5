"""Choose dp-diffusion-image's defaults on a VALIDATION split (issue 12): never the test split.

    python evaluation/tune_image_defaults.py --dataset pneumoniamnist --epsilon 10 --steps 60 --batch-size 32 \
        --candidates '{"A_current": {}, "B_lr3e-3": {"lr": 0.003}, "C_K4": {"noise_multiplicity": 4}}'

Each candidate (overrides of the generator's current defaults) is fitted on the TRAIN split at the
same DP schedule (fixed steps and batch, so the same noise multiplier), ``--n-synthetic`` images are
sampled, one SmallCNN is trained on them and scored on the VALIDATION split (balanced accuracy,
macro AUROC, per-class recall, beside the majority class). The test split is never loaded into the
evaluation. One JSON line per candidate goes to ``--out``/tune_<dataset>_eps<e>.jsonl and a class-
labelled grid per candidate beside it, so the grids can be looked at before choosing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dpsynth.config import build_generator  # noqa: E402
from dpsynth.data.images import load_image_splits  # noqa: E402
from dpsynth.metrics.image_cnn import predict_proba, train_cnn  # noqa: E402
from dpsynth.metrics.image_grid import save_labelled_grid  # noqa: E402
from dpsynth.metrics.image_verdict import class_scores, majority_baseline  # noqa: E402
from dpsynth.privacy.budget import Budget  # noqa: E402

DATA = ROOT / ".." / "shared" / "data" / "medmnist"


def tune_one(name: str, overrides: dict, *, train, val, args) -> dict:
    rng = np.random.default_rng(args.seed)
    params = {"device": "cpu", "steps": args.steps, "batch_size": args.batch_size, **overrides}
    model = build_generator("dp-diffusion-image", params)
    start = time.perf_counter()
    model.fit(train, budget=Budget(epsilon=args.epsilon), rng=rng)
    fit_s = time.perf_counter() - start
    syn = model.sample(args.n_synthetic, rng=rng).to_image_data()
    k = train.schema.n_classes
    cnn = train_cnn(syn.images, syn.labels, n_classes=k, rng=rng, epochs=args.cnn_epochs)
    scores = class_scores(predict_proba(cnn, val.images), val.labels, n_classes=k)
    grid = Path(args.out) / f"tune_{args.dataset}_eps{args.epsilon:g}_{name}_labelled.png"
    save_labelled_grid(syn.images, syn.labels, train.schema.classes, grid,
                       title=f"tuning {args.dataset} eps {args.epsilon:g} {name} (validation split)")
    return {"candidate": name, "overrides": overrides, "params": params, "dataset": args.dataset,
            "eval_split": "val", "n_val": len(val), "epsilon": model.ledger_.epsilon(), "schedule": model.dp_plan_,
            "val": scores, "majority": majority_baseline(train.labels, val.labels, n_classes=k),
            "fit_s": fit_s, "wall_s": time.perf_counter() - start, "grid": str(grid.relative_to(ROOT))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="pneumoniamnist")
    parser.add_argument("--epsilon", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--candidates", required=True, help="JSON {name: {param: value}} of overrides")
    parser.add_argument("--n-synthetic", type=int, default=300)
    parser.add_argument("--cnn-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "evaluation" / "results" / "images" / "tuning"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    splits = load_image_splits(DATA / f"{args.dataset}.npz")
    train, val = splits["train"], splits["val"]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"tune_{args.dataset}_eps{args.epsilon:g}.jsonl"
    for name, overrides in json.loads(args.candidates).items():
        row = tune_one(name, overrides, train=train, val=val, args=args)
        with path.open("a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        v = row["val"]
        print(f"{name:<16} val bal.acc={v['balanced_accuracy']:.3f} auroc={v['auroc']:.3f} acc={v['accuracy']:.3f}"
              f" recall={v['per_class_recall']} maj.acc={row['majority']['accuracy']:.3f}"
              f" eps={row['epsilon']:.3g} wall={row['wall_s']:.0f}s (fit {row['fit_s']:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
