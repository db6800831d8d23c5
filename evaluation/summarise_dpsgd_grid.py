"""Per table x epsilon: mean ± sd over seeds of the TEST TSTR/TRTR of the DP-SGD package defaults
(dp-gan:s750b, dp-diffusion:s500m4b) from ``evaluation/results/suite_runs_dpsgd.jsonl``, the number
of seeds, and a flag where epsilon 4 is below epsilon 1 by more than 2 standard errors
(SE of the difference: sqrt(sd1^2/n1 + sd4^2/n4); needs >= 2 seeds at both).

    python evaluation/summarise_dpsgd_grid.py            # markdown to stdout
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

RUNS = Path(__file__).resolve().parent / "results" / "suite_runs_dpsgd.jsonl"
DEFAULTS = {"dp-gan": "s750b", "dp-diffusion": "s500m4b"}
EPSILONS = (0.5, 1.0, 4.0)


def load(path: Path) -> dict:
    cells, seen = defaultdict(list), set()
    for line in path.read_text().splitlines():
        r = json.loads(line) if line.strip() else None
        if r is None or DEFAULTS.get(r["method"]) != r["setting"]:
            continue
        k = (r["table"], r["method"], r["epsilon"], r["seed"])
        if k in seen:  # the first record of a key wins (as bench_suite.load_runs)
            continue
        seen.add(k)
        cells[(r["table"], r["method"], r["epsilon"])].append(r["tstr"]["test"] / r["trtr"]["test"])
    return cells


def stats(xs: list[float]) -> tuple[float, float, int]:
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan")), len(xs)


def fmt(xs: list[float]) -> str:
    if not xs:
        return "–"
    m, s, n = stats(xs)
    return f"{m:.3f} ± {s:.3f} (n={n})" if n > 1 else f"{m:.3f} (n=1)"


def drop_flag(x1: list[float], x4: list[float]) -> str:
    if len(x1) < 2 or len(x4) < 2:
        return ""
    m1, s1, n1 = stats(x1)
    m4, s4, n4 = stats(x4)
    se = math.sqrt(s1 ** 2 / n1 + s4 ** 2 / n4)
    if m4 < m1 - 2 * se:
        return f"**eps 4 < eps 1 by {m1 - m4:.3f} > 2 SE ({2 * se:.3f})**"
    return ""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=RUNS)
    args = p.parse_args(argv)
    cells = load(args.runs)
    rows = {r[0]: 0 for r in cells}
    for line in args.runs.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[r["table"]] = r["rows"]
    tables = sorted(rows, key=lambda t: -rows[t])
    for method, setting in DEFAULTS.items():
        print(f"\n### {method}:{setting}, TEST TSTR/TRTR, mean ± sd over seeds (n = seeds)\n")
        print("| table | rows | " + " | ".join(f"eps {e:g}" for e in EPSILONS) + " | eps 4 vs eps 1 |")
        print("|---|---|" + "---|" * (len(EPSILONS) + 1))
        for t in tables:
            got = [cells.get((t, method, e), []) for e in EPSILONS]
            flag = drop_flag(cells.get((t, method, 1.0), []), cells.get((t, method, 4.0), []))
            print(f"| {t} | {rows[t]} | " + " | ".join(fmt(x) for x in got) + f" | {flag} |")


if __name__ == "__main__":
    main()
