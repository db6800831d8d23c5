"""The public suite benchmark: tables x generators x epsilon x seeds, TSTR/TRTR, leave-one-dataset-out.

    OMP_NUM_THREADS=1 python evaluation/bench_suite.py                  # the sized grid (see GRID_CUT)
    OMP_NUM_THREADS=1 python evaluation/bench_suite.py --full           # every table x method x eps x 3 seeds
    python evaluation/bench_suite.py --report-only                      # re-write suite.md / suite.json

Tables: ``evaluation/suite_tables.py`` (public schemas in ``evaluation/schemas/``). Splits:
``split_table(frame, SplitSpec(seed=0))`` per table: train 60 %, VALIDATION (the holdout) 20 %,
test 20 %. Every run fits on train at the given epsilon and seed, samples as many rows as train
holds, and trains a classifier on the synthetic rows (the schema's one-hot / standardised features;
logistic regression or HistGradientBoosting with 7 leaves, the family chosen by 3-fold CV AUROC on
the training side only, as dpsynth's utility metric does, one setting per family for run time);
it is scored (AUROC of the schema's target) on BOTH the validation and the test split. TRTR trains the same model on the
real train split. Score = TSTR / TRTR (of the same split).

Leave-one-dataset-out (computed by the report): each candidate setting of a method (CANDIDATES) runs on every
table; for a left-out table L the chosen setting maximises the mean VALIDATION score over the
other tables (all epsilons, seeds); L's TEST score with it is the honest left-out figure. The
package default is the setting that wins over the whole suite (validation). No choice reads a
test split. ``auto`` runs ``dpsynth.generators.auto`` (a rule of public facts, written from the
validation evidence; see its module docstring).

Results: one JSON line per run in ``evaluation/results/suite_runs.jsonl`` (dp-gan / dp-diffusion
runs in ``suite_runs_dpsgd.jsonl``; the report reads every ``suite_runs*.jsonl`` there, so runs made
on another branch or machine merge into one table; a rerun skips the runs already in any of them),
summarised in ``evaluation/results/suite.md`` and ``suite.json``. These are internal evaluations
(they read real test rows) of public tables; no real row is written. ``--settings`` may also name a
diagnostic PROBE setting (e.g. ``aim:bins16``); probes never enter the default grid.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.data.splits import SplitSpec, split_table  # noqa: E402
from dpsynth.data.table import TableData  # noqa: E402
from dpsynth.generators import REGISTRY  # noqa: E402
from dpsynth.metrics.encoding import FeatureEncoder  # noqa: E402
from dpsynth.privacy.budget import Budget  # noqa: E402
from evaluation.suite_tables import TABLES, load_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "suite_runs.jsonl"
RUNS_DPSGD = RESULTS / "suite_runs_dpsgd.jsonl"
EPSILONS = (0.5, 1.0, 4.0)
SEEDS = (0, 1, 2)
EPSILONS_FIRST = (1.0, 4.0, 0.5)
BIG = 2000  # rows: the targets apply to tables at least this large
# candidate settings per method; "default" is the package default at the time of the run
CANDIDATES: dict[str, dict[str, dict]] = {  # "default": the package default before issue 16 (explicit values)
    "aim": {"default": {"bins": 8, "target_weight": 8.0, "target_degree": 3},
            "paper": {"bins": 16, "target_weight": 1.0, "target_degree": None},
            "no3way": {"bins": 8, "target_weight": 8.0, "target_degree": None}},
    "mst": {"default": {"bins": 16, "target_weight": 1.0}, "bins8": {"bins": 8, "target_weight": 1.0},
            "tw4": {"bins": 16, "target_weight": 4.0}},
    "independent": {"default": {}},
    "auto": {"default": {}},
    "dp-gan": {"mb32": {"min_batch_size": 32}, "mb128": {"min_batch_size": 128}},
    "dp-diffusion": {"mb32": {"min_batch_size": 32}, "mb128": {"min_batch_size": 128}},
}
# diagnostic settings: run only when --settings names them (never in the default grid, never candidates
# of the leave-one-dataset-out choice unless they ran on every table)
PROBES: dict[str, dict[str, dict]] = {
    "aim": {"bins16": {"bins": 16, "target_weight": 8.0, "target_degree": 3},
            "tw32": {"bins": 8, "target_weight": 32.0, "target_degree": 3},
            # aimsel16: target candidates scored by the error of P(target | rest) (aim.py, target_score)
            "cond": {"bins": 8, "target_weight": 8.0, "target_degree": 3, "target_score": "conditional"},
            "cond3": {"bins": 8, "target_weight": 8.0, "target_degree": 3, "target_score": "conditional-3way"},
            "tv3": {"bins": 8, "target_weight": 8.0, "target_degree": 3, "target_score": "tv-3way"}},
    "mst": {"tw16": {"bins": 16, "target_weight": 16.0}, "bins8tw4": {"bins": 8, "target_weight": 4.0}},
}
DPSGD = ("dp-gan", "dp-diffusion")
# the setting of each method that the package default equals (after the leave-one-dataset-out choice)
PACKAGE_DEFAULTS = {"auto": "default", "aim": "no3way", "mst": "tw4", "dp-gan": "mb32", "dp-diffusion": "mb32",
                    "independent": "default"}
GRID_CUT = ("One command runs the issue's whole grid: `OMP_NUM_THREADS=1 python evaluation/bench_suite.py --full` (every"
            " table x aim / mst / dp-gan / dp-diffusion / independent / auto, every candidate setting, eps 0.5 / 1 / 4 x"
            " seeds 0-2; resumable). Without --full, dp-gan / dp-diffusion run only at eps 1, seed 0, on the tables with"
            " >= 2,000 rows. What ran is listed below (2 shared CPU cores): the package defaults aim:default, mst:tw4 and"
            " independent, and the aim candidates aim:no3way and aim:paper, at every table x eps x seeds 0-2 (aids also"
            " seeds 3-5; aim:default / aim:no3way seeds 0-5 everywhere), the other"
            " candidates partly; auto's"
            " cells are its pick's runs (see the last section). dp-gan / dp-diffusion runs are read from"
            " suite_runs_dpsgd.jsonl when present (written by this script or by the DP-SGD branch, same format). aim runs"
            " made before aim's round-logic fix (aim13) are kept in results/suite_archive/ and not read here.")


class Scorer:
    """One fixed classifier per table: trained on a frame, AUROC on the validation and test splits."""

    def __init__(self, splits, schema) -> None:
        self.schema, self.target = schema, schema.target
        self.features = tuple(n for n in schema.names if n != schema.target)
        self.encoder = FeatureEncoder(schema, columns=self.features).fit(splits.train)
        self.val, self.test = splits.holdout, splits.test
        self.trtr = self.score(splits.train)

    def _y(self, frame) -> np.ndarray:
        col = self.schema[self.target]
        return (frame[self.target].astype(str) == str(col.categories[-1])).to_numpy().astype(int)

    def score(self, frame) -> dict:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold, cross_val_score

        y = self._y(frame)
        if min(y.sum(), len(y) - y.sum()) < 3:  # a training set with (almost) one class: chance level
            return {"val": 0.5, "test": 0.5, "family": None}
        x = self.encoder.transform(frame)
        families = {"logistic_regression": LogisticRegression(max_iter=2000),
                    "gradient_boosting": HistGradientBoostingClassifier(max_leaf_nodes=7, early_stopping=False,
                                                                        random_state=0)}
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
        cv = {k: float(np.mean(cross_val_score(m, x, y, cv=folds, scoring="roc_auc"))) for k, m in families.items()}
        family = max(cv, key=cv.get)  # chosen on the training side only (synthetic rows for TSTR)
        model = families[family].fit(x, y)
        out = {split: float(roc_auc_score(self._y(real), model.predict_proba(self.encoder.transform(real))[:, 1]))
               for split, real in (("val", self.val), ("test", self.test))}
        return {**out, "family": family}


def run_one(table, method, setting, params, epsilon, seed, splits, schema, scorer) -> dict:
    gen = REGISTRY[method](**params)
    wall = time.perf_counter()
    gen.fit(TableData(splits.train, schema), budget=Budget(epsilon=epsilon), rng=np.random.default_rng(seed))
    fit_s = time.perf_counter() - wall
    syn = gen.sample(len(splits.train), rng=np.random.default_rng(seed + 1000)).frame
    out = {"table": table, "method": method, "setting": setting, "params": params, "epsilon": epsilon, "seed": seed,
           "fit_s": round(fit_s, 2), "ledger_epsilon": float(gen.ledger_.epsilon()),
           "tstr": scorer.score(syn), "trtr": scorer.trtr, "rows": len(splits.train) + len(splits.holdout) + len(splits.test)}
    if method == "auto":
        out["choice"] = gen.reason_
    return out


def candidates(method: str) -> dict[str, dict]:
    """A method's candidate settings. The DP-SGD generators' schedule candidates are owned by
    ``evaluation/bench_suite_dpsgd.py`` (the issue-16 DP-SGD branch) when that module is present,
    so this one command runs the same settings it selects among; else the ones listed here."""
    if method in DPSGD:
        try:
            from evaluation.bench_suite_dpsgd import CANDIDATES as owned  # imported late: it imports this module
        except ImportError:
            owned = {}
        if owned.get(method):
            return owned[method]
    return CANDIDATES[method]


def plan(tables, full: bool, methods, probes: tuple[str, ...] = (), seeds_asked=None) -> list[tuple]:
    jobs = []
    for method in methods:
        extra = {k: v for k, v in PROBES.get(method, {}).items() if f"{method}:{k}" in probes}
        for setting, params in {**candidates(method), **extra}.items():
            for table, rows in tables:
                if method in DPSGD and not full and rows < BIG:
                    continue
                eps = EPSILONS if (full or method not in DPSGD) else (1.0,)
                seeds = seeds_asked or (SEEDS if (full or method not in DPSGD) else (0,))
                jobs += [(table, method, setting, params, e, s) for e in eps for s in seeds]
    # balanced partial coverage when --budget-s stops the grid early: seed 0 first, epsilon 1 first
    return sorted(jobs, key=lambda j: (j[5], EPSILONS_FIRST.index(j[4]) if j[4] in EPSILONS_FIRST else 9))


def runs_file(method: str) -> Path:
    """DP-SGD runs go to their own file (the sgd16 branch writes the same file); the rest to RUNS."""
    return RUNS_DPSGD if method in DPSGD else RUNS


def load_runs(folder: Path | None = None) -> list[dict]:
    """Every run in every ``suite_runs*.jsonl`` of the results folder (one per key: table, method,
    setting, epsilon, seed; the first seen wins, files in name order)."""
    runs, seen = [], set()
    for path in sorted((folder or RESULTS).glob("suite_runs*.jsonl")):
        for line in path.read_text().splitlines():  # parallel invocations may repeat one
            r = json.loads(line) if line.strip() else None
            key = r and (r["table"], r["method"], r["setting"], r["epsilon"], r["seed"])
            if key and key not in seen:
                seen.add(key)
                runs.append(r)
    return runs


def main(argv: list[str] | None = None) -> None:
    from evaluation.suite_report import write_report

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="+", default=list(TABLES))
    p.add_argument("--methods", nargs="+", default=list(CANDIDATES))
    p.add_argument("--settings", nargs="+", default=None, help="only these method:setting pairs, e.g. aim:default")
    p.add_argument("--epsilons", nargs="+", type=float, default=None, help="only these epsilons")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="these seeds (default 0 1 2)")
    p.add_argument("--full", action="store_true", help="dp-gan / dp-diffusion at every table, epsilon and seed too")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--budget-s", type=float, default=float("inf"), help="stop starting runs after this many seconds")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    if not args.report_only:
        done = {(r["table"], r["method"], r["setting"], r["epsilon"], r["seed"]) for r in load_runs()}
        loaded = {}
        for table in args.tables:
            got = load_table(table)
            if got is not None:
                frame, schema = got
                splits = split_table(frame, SplitSpec(seed=0))
                loaded[table] = (splits, schema, Scorer(splits, schema), len(frame))
        jobs = plan([(t, v[3]) for t, v in loaded.items()], args.full, args.methods, tuple(args.settings or ()),
                    args.seeds)
        jobs = [j for j in jobs if (j[0], j[1], j[2], j[4], j[5]) not in done
                and (args.settings is None or f"{j[1]}:{j[2]}" in args.settings)
                and (args.epsilons is None or j[4] in args.epsilons) and (args.seeds is None or j[5] in args.seeds)]
        print(f"{len(jobs)} runs to do", flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        for i, (table, method, setting, params, eps, seed) in enumerate(jobs):
            if time.perf_counter() - start > args.budget_s:
                print(f"time budget reached: {len(jobs) - i} runs not started")
                break
            splits, schema, scorer, _ = loaded[table]
            r = run_one(table, method, setting, params, eps, seed, splits, schema, scorer)
            with runs_file(method).open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            print(f"[{i + 1}/{len(jobs)}] {table} {method}:{setting} eps={eps:g} seed={seed}: "
                  f"val {r['tstr']['val']:.3f} test {r['tstr']['test']:.3f} (TRTR {r['trtr']['test']:.3f}) "
                  f"{r['fit_s']:.1f}s" + (f"  [{r['choice']}]" if r.get("choice") else ""), flush=True)
    write_report(load_runs(), GRID_CUT, RESULTS)


if __name__ == "__main__":
    main()
