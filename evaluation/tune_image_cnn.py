"""Choose the downstream CNN's training length on VALIDATION splits (issue 12).

The fixed recipe (10 epochs of batch 128) gives a 546-image set 50 optimizer steps: the real-trained
CNN on BreastMNIST then predicts the majority class, so no synthetic-vs-real ratio on that set means
anything. This script trains the real-side SmallCNN on each set's TRAIN split with several minimum
step counts and scores it on the VALIDATION split (the test split is not read):

    python evaluation/tune_image_cnn.py --datasets breastmnist pneumoniamnist retinamnist --min-steps 0 300 600 1200 --repeats 3
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

from dpsynth.data.images import load_image_splits  # noqa: E402
from dpsynth.metrics.image_cnn import predict_proba, train_cnn  # noqa: E402
from dpsynth.metrics.image_verdict import class_scores, is_ordinal  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT / ".." / "shared" / "data" / "medmnist"))
    parser.add_argument("--datasets", nargs="+", default=["breastmnist", "pneumoniamnist", "retinamnist"])
    parser.add_argument("--min-steps", nargs="+", type=int, default=[0, 300, 600, 1200])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "evaluation" / "results" / "images" / "tuning" / "tune_image_cnn.jsonl"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in args.datasets:
        splits = load_image_splits(Path(args.data_dir) / f"{name}.npz")
        train, val = splits["train"], splits["val"]
        k = len(train.schema.classes)
        ordinal = is_ordinal(train.schema)
        for min_steps in args.min_steps:
            rng = np.random.default_rng(0)
            start = time.perf_counter()
            scores = []
            for _ in range(args.repeats):
                model = train_cnn(train.images, train.labels, n_classes=k, rng=rng, epochs=10, min_steps=min_steps)
                scores.append(class_scores(predict_proba(model, val.images), np.asarray(val.labels), n_classes=k,
                                           ordinal=ordinal))
            row = {"dataset": name, "min_steps": min_steps, "n_train": len(train), "repeats": args.repeats,
                   "val_balanced_accuracy": [s["balanced_accuracy"] for s in scores],
                   "val_auroc": [s.get("auroc") for s in scores], "seconds": time.perf_counter() - start}
            row["mean_balanced_accuracy"] = float(np.mean(row["val_balanced_accuracy"]))
            rows.append(row)
            print(f"{name:<15} min_steps={min_steps:<5} val bal.acc {row['mean_balanced_accuracy']:.3f} "
                  f"({', '.join(f'{v:.3f}' for v in row['val_balanced_accuracy'])})  "
                  f"auroc {np.mean([a for a in row['val_auroc'] if a is not None]):.3f}  {row['seconds']:.0f}s", flush=True)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
