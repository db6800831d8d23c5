"""Re-score saved synthetic images (``bench_images.py --save-synthetic``) without refitting.

Synthetic images are DP output, so re-scoring them is post-processing: no privacy cost. Used when
the downstream CNN recipe changes (evaluation/tune_image_cnn.py) so that earlier fits are scored
by the same recipe as new ones:

    python evaluation/rescore_images.py evaluation/results/images/i12c/bench_images_*.json --cnn-repeats 3
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
sys.path.insert(0, str(ROOT / "evaluation"))

from bench_images import DEFAULT_DATA, TARGETS, load_benchmark_splits, summary_line  # noqa: E402

from dpsynth.data.images import ImageData  # noqa: E402
from dpsynth.metrics.image import evaluate_images  # noqa: E402
from dpsynth.metrics.image_cnn import CNN_MIN_STEPS  # noqa: E402


def rescore(run: dict, *, data_dir: Path, cnn_repeats: int, cnn_min_steps: int, seed: int,
            eval_split: str = "as-run") -> dict:
    dataset = run["dataset"]
    split = run.get("eval_split", "test") if eval_split == "as-run" else eval_split
    # val: tuning, scored on the validation split (also the attack holdout: attack AUROCs mean nothing)
    train, holdout, test = load_benchmark_splits(dataset, data_dir, eval_split=split)
    with np.load(run["synthetic_file"], allow_pickle=False) as archive:
        images, labels = archive["images"].astype(np.float32), archive["labels"].astype(np.int64)
    synthetic = ImageData(images, labels, train.schema, None, run["synthetic_file"])
    start = time.perf_counter()
    results = evaluate_images(train, holdout, test, synthetic, classes=train.schema.classes,
                              rng=np.random.default_rng(seed), cnn_repeats=cnn_repeats, cnn_min_steps=cnn_min_steps,
                              target=TARGETS.get((dataset, float(run["epsilon_target"]))))
    out = dict(run)
    out["metrics"] = {k: v.to_dict() for k, v in results.items()}
    out["eval_split"] = split
    out["rescored"] = {"cnn_repeats": cnn_repeats, "cnn_min_steps": cnn_min_steps, "seed": seed,
                       "eval_s": time.perf_counter() - start}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="bench_images JSON files whose runs saved synthetic images")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--cnn-repeats", type=int, default=3)
    parser.add_argument("--cnn-min-steps", type=int, default=CNN_MIN_STEPS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the CNNs' initialisations and batch orders")
    parser.add_argument("--eval-split", choices=["as-run", "val", "test"], default="as-run",
                        help="split the CNNs are scored on (as-run: the one the bench run used)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for path in map(Path, args.results):
        runs = json.loads(path.read_text())
        out = []
        for run in runs:
            if "synthetic_file" not in run:
                print(f"{path}: run {run.get('dataset')} eps {run.get('epsilon_target')} saved no synthetic images; skipped")
                continue
            r = rescore(run, data_dir=Path(args.data_dir), cnn_repeats=args.cnn_repeats,
                        cnn_min_steps=args.cnn_min_steps, seed=args.seed, eval_split=args.eval_split)
            print(summary_line(r), flush=True)
            out.append(r)
        if out:
            split = "" if args.eval_split == "as-run" else f"_{args.eval_split}"
            target = path.with_name(f"{path.stem}_rescored-min{args.cnn_min_steps}{split}.json")
            target.write_text(json.dumps(out, indent=2, default=str))
            print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
