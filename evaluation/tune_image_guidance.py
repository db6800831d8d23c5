"""Choose dp-diffusion-image's classifier-free guidance on VALIDATION splits (issue 12).

At the no-config plan the class signal in the DP-SGD gradient is weak next to the denoising
signal: on BreastMNIST (546 images) the synthetic-trained CNN sat at the majority class. DPDM
(Dockhorn et al.) and Ghalebikesabi et al. raise the downstream accuracy of DP diffusion with
classifier-free guidance: train a null class on a fraction ``cond_drop`` of the noisy copies
(data-independent, no privacy cost) and sample eps_null + w (eps_class - eps_null). The guidance
weight w is post-processing, so one DP fit is sampled at every w.

For each (set, epsilon, seed) this script fits once on the TRAIN split with ``cond_drop``, then per
w samples the same number of images as bench_images.py, trains ``--repeats`` SmallCNNs on them and
scores them on the VALIDATION split (the test split is not read). The real-trained CNN is scored
beside them. Rows go to a JSONL file, and a class-labelled grid per w beside it:

    python evaluation/tune_image_guidance.py --dataset breastmnist --epsilon 10 --weights 1 2 3 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "evaluation"))

from bench_images import DEFAULT_DATA, load_benchmark_splits, pretrained_checkpoint  # noqa: E402

from dpsynth.config import build_generator, load_config  # noqa: E402
from dpsynth.metrics.image_cnn import CNN_MIN_STEPS, predict_proba, train_cnn  # noqa: E402
from dpsynth.metrics.image_grid import save_labelled_grid  # noqa: E402
from dpsynth.metrics.image_verdict import class_scores, is_ordinal  # noqa: E402


def score_cnns(images, labels, val, *, n_classes: int, ordinal: bool, repeats: int, rng: np.random.Generator,
               min_steps: int) -> dict:
    scores = []
    for _ in range(repeats):
        model = train_cnn(images, labels, n_classes=n_classes, rng=rng, epochs=10, min_steps=min_steps)
        scores.append(class_scores(predict_proba(model, val.images), np.asarray(val.labels), n_classes=n_classes,
                                   ordinal=ordinal))
    bal = [s["balanced_accuracy"] for s in scores]
    auroc = [s.get("auroc") for s in scores]
    return {"val_balanced_accuracy": bal, "mean_balanced_accuracy": float(np.mean(bal)),
            "val_auroc": auroc, "mean_auroc": float(np.mean([a for a in auroc if a is not None] or [np.nan])),
            "per_class_recall": [s["per_class_recall"] for s in scores]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--epsilon", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cond-drop", type=float, default=0.1)
    parser.add_argument("--weights", nargs="+", type=float, default=[1.0, 2.0, 3.0, 5.0])
    parser.add_argument("--params", help="JSON overrides of the generator's defaults")
    parser.add_argument("--strengths", nargs="+", type=float, default=[None],
                        help="sdedit_strength values to sample at (post-processing; needs prior_share > 0 in --params)")
    parser.add_argument("--score-prior", action="store_true", help="also score the DCT prior's own samples")
    parser.add_argument("--labels", nargs="+", choices=["released", "balanced"], default=["released"],
                        help="synthetic labels: from the DP class frequencies, and/or equal counts per class")
    parser.add_argument("--n-synthetic", nargs="+", type=int, default=None,
                        help="synthetic set sizes to score (default: the training set's size, at most 2000)")
    parser.add_argument("--pretrained", action="store_true", help="start from the public checkpoint under models/")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cnn-min-steps", type=int, default=CNN_MIN_STEPS)
    parser.add_argument("--tag", default="", help="suffix of the grid names (say what --params changed)")
    parser.add_argument("--out", default=str(ROOT / "evaluation" / "results" / "images" / "tuning"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, _, val = load_benchmark_splits(args.dataset, args.data_dir, eval_split="val")  # test split not read
    k = train.schema.n_classes
    ordinal = is_ordinal(train.schema)
    rng = np.random.default_rng(args.seed)
    params = {"device": "cpu", "cond_drop": args.cond_drop, **json.loads(args.params or "{}")}
    if args.pretrained:
        params["init"] = str(pretrained_checkpoint("dp-diffusion-image", args.dataset, train.schema))
    cfg = load_config(ROOT / "configs" / "dp_diffusion_image_cpu.yaml")
    budget = replace(cfg.privacy, epsilon=args.epsilon).budget()
    model = build_generator("dp-diffusion-image", params)
    start = time.perf_counter()
    model.fit(train, budget=budget, rng=rng)
    fit_s = time.perf_counter() - start
    base = {"dataset": args.dataset, "epsilon_target": args.epsilon, "epsilon": model.ledger_.epsilon(),
            "seed": args.seed, "params": params, "pretrained": args.pretrained, "fit_s": fit_s, "n_train": len(train),
            "schedule": model.schedule_.to_dict(), "eval_split": "val", "tag": args.tag, "cnn_min_steps": args.cnn_min_steps}
    print(f"{args.dataset} eps {args.epsilon:g} seed {args.seed}: fitted in {fit_s:.0f}s, epsilon {base['epsilon']:.4f}",
          flush=True)
    rows = []
    real = score_cnns(train.images, train.labels, val, n_classes=k, ordinal=ordinal, repeats=args.repeats,
                      rng=np.random.default_rng(1000 + args.seed), min_steps=args.cnn_min_steps)
    print(f"  real CNN: val bal.acc {real['mean_balanced_accuracy']:.3f}", flush=True)
    sizes = args.n_synthetic or [min(len(train), 2000)]
    tag = f"{args.dataset}_eps{args.epsilon:g}_seed{args.seed}_drop{args.cond_drop:g}{'_pre' if args.pretrained else ''}"
    tag += f"_{args.tag}" if args.tag else ""
    variants = [(w, st, mix, n) for w in args.weights for st in args.strengths for mix in args.labels for n in sizes]
    if args.score_prior:
        variants.append((None, None, "released", sizes[0]))
    for w, strength, mix, n_syn in variants:
        if w is None:  # the released prior's own samples (post-processing)
            labels = model._labels_for(n_syn, None, torch.Generator().manual_seed(2000 + args.seed)).numpy()
            images = model.prior_.sample(labels, np.random.default_rng(2000 + args.seed))
            syn = type("S", (), {"images": images, "labels": labels})()
        else:
            model.guidance_scale = float(w)
            if strength is not None:
                model.sdedit_strength = float(strength)
            syn = model.sample(n_syn, rng=np.random.default_rng(2000 + args.seed),
                               balanced=mix == "balanced").to_image_data()
        scores = score_cnns(syn.images, syn.labels, val, n_classes=k, ordinal=ordinal, repeats=args.repeats,
                            rng=np.random.default_rng(3000 + args.seed), min_steps=args.cnn_min_steps)
        name = "prior" if w is None else f"w{w:g}" + ("" if strength is None else f"_s{strength:g}")
        name += ("_balanced" if mix == "balanced" else "") + (f"_n{n_syn}" if args.n_synthetic else "")
        grid = out_dir / f"guidance_{tag}_{name}_labelled.png"
        save_labelled_grid(syn.images, syn.labels, train.schema.classes, grid,
                           title=f"{args.dataset} eps {args.epsilon:g} {args.tag or ''} {name} (val tuning)")
        row = {**base, "guidance_scale": w, "sdedit_strength": strength, "labels": mix, "n_synthetic": n_syn,
               "variant": name, "synthetic": scores,
               "real": real,
               "ratio": scores["mean_balanced_accuracy"] / real["mean_balanced_accuracy"],
               "grid": str(grid.relative_to(ROOT)) if grid.is_relative_to(ROOT) else str(grid)}
        rows.append(row)
        print(f"  {name:<10} val bal.acc syn {scores['mean_balanced_accuracy']:.3f} "
              f"({', '.join(f'{v:.3f}' for v in scores['val_balanced_accuracy'])}) auroc {scores['mean_auroc']:.3f}"
              f"  ratio {row['ratio']:.3f}", flush=True)
        with (out_dir / "tune_image_guidance.jsonl").open("a") as fh:
            fh.write(json.dumps(row, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
