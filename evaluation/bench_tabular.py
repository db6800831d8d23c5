"""Benchmark: DP tabular generators on ACTG 175 (target cens).

Prints, per generator and epsilon, TSTR AUROC / TRTR AUROC (mean and std over seeds), fit wall
time, the wall time of sampling 1M rows, and the DP-SGD / non-DP step-time ratio of the dp-gan
discriminator measured in the same run. Results are also written to evaluation/results/.

    python evaluation/bench_tabular.py                       # dp-gan and independent, eps 1 4 8, 3 seeds
    python evaluation/bench_tabular.py --generators dp-gan aim mst dp-diffusion --epsilons 1 8 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dpsynth.data.embedded import get_embedded
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.data.table import TableData
from dpsynth.errors import MissingExtraError
from dpsynth.generators import REGISTRY
from dpsynth.metrics.utility import TSTRAbsoluteAUROC
from dpsynth.privacy.budget import Budget

RESULTS = Path(__file__).resolve().parent / "results"


def step_time_ratio(*, batch_size: int = 128, steps: int = 100, in_dim: int = 120) -> dict:
    """Time one optimizer step of the dp-gan discriminator with and without opacus DP-SGD."""
    from torch.utils.data import DataLoader, TensorDataset

    from dpsynth.generators.tabular.gan.dp_gan import Discriminator
    from dpsynth.privacy.engine import DPSGDEngine, DPSGDPlan
    from dpsynth.privacy.ledger import Ledger

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size * steps, in_dim, generator=gen)
    y = torch.ones(batch_size * steps)

    def loop(model, opt, loader, step):
        start = time.perf_counter()
        for xb, yb in loader:
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xb.requires_grad_(True)), yb)
            loss.backward()
            step()
        return (time.perf_counter() - start) / len(loader)

    plain = Discriminator(in_dim=in_dim, hidden=(128, 128), dropout=0.0)
    opt = torch.optim.Adam(plain.parameters(), lr=1e-3)
    non_dp = loop(plain, opt, DataLoader(TensorDataset(x, y), batch_size=batch_size), opt.step)

    ledger = Ledger(delta=1e-5, target_epsilon=1e9)
    plan = DPSGDPlan(sample_rate=batch_size / len(x), steps=steps * 10, max_grad_norm=1.0, noise_multiplier=1.0)
    engine = DPSGDEngine(ledger=ledger, plan=plan, purpose="timing")
    disc = Discriminator(in_dim=in_dim, hidden=(128, 128), dropout=0.0)
    dmodel, dopt, dloader = engine.make_private(module=disc, optimizer=torch.optim.Adam(disc.parameters(), lr=1e-3),
                                                dataset=TensorDataset(x, y), torch_rng=gen)
    dp = loop(dmodel, dopt, dloader, lambda: engine.step(dopt))
    return {"non_dp_step_ms": non_dp * 1e3, "dp_step_ms": dp * 1e3, "ratio": dp / non_dp, "batch_size": batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", nargs="+", default=["dp-gan", "independent"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 4.0, 8.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--sample-rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "bench_tabular.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ds = get_embedded("actg175")
    schema = ds.schema()
    splits = split_table(schema.prepare(ds.load()), SplitSpec(seed=0))
    metric = TSTRAbsoluteAUROC(target="cens")
    trtr = metric.evaluate(splits.train, splits.holdout, splits.train, schema, test=splits.test,
                           rng=np.random.default_rng(0)).breakdown["trtr"]["selected"]["auroc"]
    print(f"ACTG 175: train {len(splits.train)}, holdout {len(splits.holdout)}, test {len(splits.test)}; "
          f"TRTR AUROC (cens, CV-selected model) = {trtr:.3f}")

    rows = []
    for name in args.generators:
        for eps in args.epsilons:
            scores, fits, samples, spent = [], [], [], []
            for seed in args.seeds:
                try:
                    start = time.perf_counter()
                    gen = REGISTRY[name]().fit(TableData(splits.train, schema), budget=Budget(epsilon=eps),
                                               rng=np.random.default_rng(seed))
                except MissingExtraError as exc:
                    print(f"skip {name}: {exc}")
                    break
                fits.append(time.perf_counter() - start)
                spent.append(gen.ledger_.epsilon())
                syn = gen.sample(len(splits.train), rng=np.random.default_rng(seed + 1000)).frame
                scores.append(metric.evaluate(splits.train, splits.holdout, syn, schema, test=splits.test,
                                              rng=np.random.default_rng(0)).value)
                if seed == args.seeds[0]:
                    start = time.perf_counter()
                    for chunk in range(0, args.sample_rows, 200_000):
                        gen.sample(min(200_000, args.sample_rows - chunk), rng=np.random.default_rng(seed))
                    samples.append(time.perf_counter() - start)
            if not scores:
                continue
            row = {"generator": name, "epsilon": eps, "epsilon_spent_max": max(spent),
                   "tstr_auroc_mean": float(np.mean(scores)), "tstr_auroc_std": float(np.std(scores)),
                   "ratio_mean": float(np.mean(scores) / trtr), "ratio_std": float(np.std(scores) / trtr),
                   "fit_s_mean": float(np.mean(fits)), "sample_1m_s": samples[0] if samples else None,
                   "seeds": args.seeds, "scores": scores}
            rows.append(row)
            print(f"{name:13s} eps={eps:<4g} spent<={row['epsilon_spent_max']:.3f}  TSTR {row['tstr_auroc_mean']:.3f}"
                  f" +/- {row['tstr_auroc_std']:.3f}  ratio {row['ratio_mean']:.3f} +/- {row['ratio_std']:.3f}"
                  f"  fit {row['fit_s_mean']:.1f}s  sample 1M {row['sample_1m_s']:.1f}s", flush=True)

    ratio = step_time_ratio()
    print(f"dp-gan discriminator step (batch {ratio['batch_size']}): DP {ratio['dp_step_ms']:.2f} ms, "
          f"non-DP {ratio['non_dp_step_ms']:.2f} ms, ratio {ratio['ratio']:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"trtr_auroc": trtr, "rows": rows, "step_time": ratio}, indent=2))
    print_markdown(rows, trtr, ratio)


def print_markdown(rows: list[dict], trtr: float, ratio: dict) -> None:
    print("\n| generator | epsilon | TSTR AUROC (mean +/- std) | TSTR / TRTR | fit (s) | sample 1M rows (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['generator']} | {r['epsilon']:g} | {r['tstr_auroc_mean']:.3f} +/- {r['tstr_auroc_std']:.3f} | "
              f"{r['ratio_mean']:.3f} +/- {r['ratio_std']:.3f} | {r['fit_s_mean']:.1f} | {r['sample_1m_s']:.1f} |")
    print(f"\nTRTR AUROC {trtr:.3f}; DP-SGD step / non-DP step (dp-gan discriminator) = {ratio['ratio']:.2f}")


if __name__ == "__main__":
    main()
