"""Benchmark: empirical epsilon lower bounds (one-run audit, Steinke, Nasr and Jagielski 2023)
of dp-gan and dp-diffusion at several epsilons and of their non-private references, next to
the claimed epsilon.

White-box (default): Dirac gradient canaries inside the discriminator's (dp-gan) or the
denoiser's (dp-diffusion) DP-SGD, each inserted
with probability 1/2, scored by their dedicated weight after training. Black-box: outlier
canary rows in the training table, scored by the distance to the nearest synthetic row.
A DP run must stay below its claim; the non-private control shows the audit's power.

    python evaluation/bench_audit.py                                  # dp-gan, eps 1, 8 and inf, 1 seed
    python evaluation/bench_audit.py --generators dp-gan dp-diffusion
    python evaluation/bench_audit.py --epochs 100 --canaries 2000 --seeds 0 1 2 --method black-box
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from dpsynth.data.embedded import get_embedded
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.data.table import TableData
from dpsynth.generators.registry import get_generator_class
from dpsynth.privacy.audit import audit_generator
from dpsynth.privacy.budget import Budget

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epsilons", nargs="+", default=["1", "8", "inf"], help="'inf' = the non-private control")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--canaries", type=int, default=1000)
    parser.add_argument("--method", choices=["white-box", "black-box"], default="white-box")
    parser.add_argument("--generators", nargs="+", default=["dp-gan"], choices=["dp-gan", "dp-diffusion"])
    parser.add_argument("--epochs", type=float, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "bench_audit.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Full backward hook is firing")  # opacus on the real-row pass
    ds = get_embedded("actg175")
    schema = ds.schema()
    train = split_table(schema.prepare(ds.load()), SplitSpec(seed=0)).train
    print(f"ACTG 175: {len(train)} training rows; {', '.join(args.generators)}: {args.epochs:g} epochs, batch "
          f"{args.batch_size}; {args.canaries} canaries ({args.method}), 95% confidence", flush=True)
    rows = []
    for name, text in [(g, e) for g in args.generators for e in args.epsilons]:
        budget = Budget.non_private_reference() if text == "inf" else Budget(epsilon=float(text))
        for seed in args.seeds:
            start = time.perf_counter()
            generator = get_generator_class(name)(epochs=args.epochs, batch_size=args.batch_size)
            res = audit_generator(generator, TableData(train, schema),
                                  budget=budget, rng=np.random.default_rng(seed), canaries=args.canaries,
                                  method=args.method)
            res.pop("by_guess_size")
            res.update(seed=seed, seconds=round(time.perf_counter() - start, 1))
            rows.append(res)
            claimed = "inf (non-private)" if res["claimed_epsilon"] is None else f"{res['claimed_epsilon']:.3f}"
            print(f"{name} epsilon {text:>4s} seed {seed}: lower bound {res['epsilon_lower_bound']:.3f}  claimed {claimed}  "
                  f"({res['correct']}/{res['guesses']} guesses, canary AUROC {res['auroc']:.3f})  "
                  f"{res['verdict']}  [{res['seconds']:.0f}s]", flush=True)
    print("\n| generator | epsilon (claimed) | empirical lower bound (95%) | correct / guesses | canary AUROC | verdict |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        claimed = "inf (non-private control)" if r["claimed_epsilon"] is None else f"{r['claimed_epsilon']:.3f}"
        print(f"| {r['generator']} | {claimed} | {r['epsilon_lower_bound']:.3f} | {r['correct']}/{r['guesses']} | {r['auroc']:.3f} | "
              f"{r['verdict']} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2,
                                         default=lambda o: "inf" if isinstance(o, float) and math.isinf(o) else str(o)))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
