"""The issue-16 suite for the DP-SGD table generators (dp-gan, dp-diffusion): schedule candidates
under one compute budget, chosen leave-one-dataset-out, then the chosen defaults at every epsilon.

    OMP_NUM_THREADS=1 python evaluation/bench_suite_dpsgd.py --phase select   # candidates, eps 1, seed 0
    OMP_NUM_THREADS=1 python evaluation/bench_suite_dpsgd.py --phase report   # chosen defaults, eps 0.5 and 4

It reuses :mod:`evaluation.bench_suite` (tables, 60/20/20 splits, the Scorer, ``run_one``) and
writes the same JSON records to ``evaluation/results/suite_runs_dpsgd.jsonl`` (a rerun skips the
runs already there); ``suite_report.py`` reads every ``suite_runs*.jsonl``.

Compute budget (stated, public): a fit may process at most ``max_examples`` examples (steps x
logical batch; :func:`dpsynth.privacy.schedule.plan_schedule`, rule 3). dp-diffusion's per-example
cost grows with ``noise_multiplicity`` (noisy copies per example), so its budget is in example
copies: 240,000 (30,000 examples at 8 copies, 60,000 at 4). Every candidate of a generator has the
same budget; they differ in how it is spent (steps, copies, learning rate).

Selection reads only the VALIDATION score (TSTR/TRTR of each run's ``val`` entry); for a left-out
table the candidate with the best mean over the other nine is taken and its TEST score is the
honest figure (``--phase lodo`` prints the table).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.data.splits import SplitSpec, split_table  # noqa: E402
from dpsynth.generators import REGISTRY  # noqa: E402
from dpsynth.privacy.budget import Budget  # noqa: E402
from evaluation.bench_suite import RESULTS, Scorer, run_one  # noqa: E402
from evaluation.suite_tables import TABLES, load_table  # noqa: E402

RUNS = RESULTS / "suite_runs_dpsgd.jsonl"
GAN_BUDGET = 60_000  # examples per fit
DIFFUSION_COPIES = 240_000  # example copies per fit
CANDIDATES: dict[str, dict[str, dict]] = {
    "dp-gan": {"s250": {"steps": 250, "max_examples": GAN_BUDGET, "budget_cut": "steps"},
               "s750": {"steps": 750, "max_examples": GAN_BUDGET, "budget_cut": "steps"},
               "s750b": {"steps": 750, "max_examples": GAN_BUDGET, "budget_cut": "batch"},
               "s250lr3": {"steps": 250, "max_examples": GAN_BUDGET, "budget_cut": "steps", "generator_lr": 3e-3,
                           "discriminator_lr": 3e-3}},
    "dp-diffusion": {"s250m8": {"steps": 250, "noise_multiplicity": 8, "max_examples": DIFFUSION_COPIES // 8,
                                "budget_cut": "steps"},
                     "s500m4": {"steps": 500, "noise_multiplicity": 4, "max_examples": DIFFUSION_COPIES // 4,
                                "budget_cut": "steps"},
                     "s500m4b": {"steps": 500, "noise_multiplicity": 4, "max_examples": DIFFUSION_COPIES // 4,
                                 "budget_cut": "batch"}},
}


def key(r: dict) -> tuple:
    return r["table"], r["method"], r["setting"], r["epsilon"], r["seed"]


def load_runs() -> list[dict]:
    if not RUNS.is_file():
        return []
    return [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()]


def ratio(r: dict, split: str) -> float:
    return r["tstr"][split] / r["trtr"][split]


def lodo(runs: list[dict], method: str, epsilon: float = 1.0) -> dict:
    """Per left-out table: the candidate with the best mean validation ratio on the other tables."""
    mine = [r for r in runs if r["method"] == method and r["epsilon"] == epsilon and r["seed"] == 0]
    settings = sorted({r["setting"] for r in mine})
    by = {(r["table"], r["setting"]): r for r in mine}
    tables = sorted({t for t, _ in by if all((t, s) in by for s in settings)})
    if len(tables) < 2:  # leave-one-out needs another table to choose on
        tables = []
    val = {s: {t: ratio(by[(t, s)], "val") for t in tables} for s in settings}
    out = {"settings": settings, "tables": tables, "val": val, "left_out": {},
           "suite_winner": max(settings, key=lambda s: statistics.mean(val[s].values())) if tables else None}
    for t in tables:
        others = [u for u in tables if u != t]
        chosen = max(settings, key=lambda s: statistics.mean(val[s][u] for u in others))
        out["left_out"][t] = (chosen, ratio(by[(t, chosen)], "test"))
    return out


BUDGET_CUT_PAIRS = {"dp-gan": ("s750", "s750b"), "dp-diffusion": ("s500m4", "s500m4b")}


def print_budget_cut(runs: list[dict]) -> None:
    """The budget rule (cut the steps vs cut the batch) per epsilon, VALIDATION ratios only, on the
    tables where both ran (seed 0): the rule is chosen at every epsilon, not at epsilon 1 alone."""
    by = {(r["method"], r["setting"], r["table"], r["epsilon"]): ratio(r, "val") for r in runs if r["seed"] == 0}
    for method, (steps_cut, batch_cut) in BUDGET_CUT_PAIRS.items():
        print(f"\n### {method}: budget_cut steps ({steps_cut}) vs batch ({batch_cut}), validation TSTR/TRTR\n")
        print("| epsilon | tables | steps cut | batch cut | batch better / equal / worse |")
        print("|---|---|---|---|---|")
        for eps in sorted({k[3] for k in by if k[0] == method}):
            tables = sorted(t for (m, s_, t, e) in by if (m, s_, e) == (method, steps_cut, eps)
                            and (method, batch_cut, t, eps) in by)
            if not tables:
                continue
            a = [by[(method, steps_cut, t, eps)] for t in tables]
            b = [by[(method, batch_cut, t, eps)] for t in tables]
            better = sum(y > x + 1e-9 for x, y in zip(a, b))
            equal = sum(abs(y - x) <= 1e-9 for x, y in zip(a, b))
            print(f"| {eps:g} | {len(tables)} | {statistics.mean(a):.3f} | {statistics.mean(b):.3f} | "
                  f"{better} / {equal} / {len(tables) - better - equal} |")


def print_lodo(runs: list[dict]) -> None:
    print_budget_cut(runs)
    for method in CANDIDATES:
        res = lodo(runs, method)
        if not res["tables"]:
            continue
        s = res["settings"]
        print(f"\n### {method} (eps 1, seed 0): whole-suite winner {res['suite_winner']}\n")
        print("| table | " + " | ".join(f"val {x}" for x in s) + " | left-out pick | its TEST TSTR/TRTR |")
        print("|---|" + "---|" * (len(s) + 2))
        for t in res["tables"]:
            pick, score = res["left_out"][t]
            print(f"| {t} | " + " | ".join(f"{res['val'][x][t]:.3f}" for x in s) + f" | {pick} | {score:.3f} |")
        means = " | ".join(f"{statistics.mean(res['val'][x].values()):.3f}" for x in s)
        print(f"| mean | {means} | | {statistics.mean(v for _, v in res['left_out'].values()):.3f} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phase", choices=("select", "report", "lodo"), required=True)
    p.add_argument("--tables", nargs="+", default=list(TABLES))
    p.add_argument("--methods", nargs="+", default=list(CANDIDATES))
    p.add_argument("--settings", nargs="+", default=None, help="report phase: method:setting of the chosen defaults")
    p.add_argument("--epsilons", nargs="+", type=float, default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--budget-s", type=float, default=float("inf"), help="stop starting runs after this many seconds")
    args = p.parse_args(argv)
    if args.phase == "lodo":
        print_lodo(load_runs())
        return
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    done = {key(r) for r in load_runs()}
    jobs = []
    for table in args.tables:  # table-major, so a cut-off run leaves every candidate on the same tables
        for method in args.methods:
            for setting, params in CANDIDATES[method].items():
                if args.phase == "report" and f"{method}:{setting}" not in (args.settings or ()):
                    continue
                eps_list = args.epsilons or ((1.0,) if args.phase == "select" else (0.5, 4.0))
                jobs += [(table, method, setting, params, e, s) for e in eps_list for s in args.seeds
                         if (table, method, setting, e, s) not in done]
    print(f"{len(jobs)} runs to do", flush=True)
    cache = {}
    for i, (table, method, setting, params, eps, seed) in enumerate(jobs):
        if time.perf_counter() - start > args.budget_s:
            print(f"time budget reached: {len(jobs) - i} runs not started")
            break
        if table not in cache:
            got = load_table(table)
            if got is None:
                continue
            frame, schema = got
            splits = split_table(frame, SplitSpec(seed=0))
            cache[table] = (splits, schema, Scorer(splits, schema))
        splits, schema, scorer = cache[table]
        n = len(splits.train)
        plan = REGISTRY[method](**params).plan_schedule(n, epsilon=eps, delta=Budget(epsilon=eps).resolve_delta(n))
        r = run_one(table, method, setting, params, eps, seed, splits, schema, scorer)
        with RUNS.open("a") as fh:
            fh.write(json.dumps(r) + "\n")
        print(f"[{i + 1}/{len(jobs)}] {table} {method}:{setting} eps={eps:g} seed={seed} {plan.steps}x{plan.batch_size}: "
              f"val {r['tstr']['val']:.3f}/{r['trtr']['val']:.3f} test {r['tstr']['test']:.3f}/{r['trtr']['test']:.3f} "
              f"fit {r['fit_s']:.1f}s", flush=True)
    print_lodo(load_runs())


if __name__ == "__main__":
    main()
