"""Marginal generators on 1M-100M rows: fit time and peak RSS per counting backend.

Diabetes-130 replicated with fresh synthetic ids (evaluation/scale_data.py) to each size; for
each backend (numpy: pandas + np.bincount; duckdb; spark local) one fit of the generator at
epsilon 1 in its own process, its peak RSS (the whole process tree, Spark's JVM included,
sampled every 0.2 s) and wall time, against the physical floor: one DuckDB scan of the file
that reads every schema column (``sum(hash(...))``). Each fit runs under a time limit and an
RSS cap; a backend past either is reported as stopped there.

    python evaluation/bench_scale.py --rows 1000000 10000000 100000000 --backends duckdb numpy spark \\
        --generators aim mst independent --aim-bound --data-dir /work/h14scale_data --out evaluation/results/scale.json

aim runs under the public large-table rule (``dpsynth.scale.aim_bound.large_table_rule``: from 1M
rows, T = 4 x columns rounds and a 4 MB model), as on the CLI's engine path; ``--no-aim-rule`` turns it
off, ``--aim-bound`` applies the older fixed bound (T 32, 4 MB) first.

The replicated files are large: keep --data-dir outside git, and delete them afterwards
(``--cleanup``). Threads: 2 for every engine (DuckDB threads, Spark local[2]), OMP 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def run_measured(cmd: list[str], *, timeout: float, rss_cap: int) -> dict:
    """Run ``cmd``; its JSON last line, wall seconds, peak tree RSS; killed past timeout / cap."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    peak, stopped = 0, None
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        elapsed = time.perf_counter() - start
        if elapsed > timeout or peak > rss_cap:
            stopped = f"time > {timeout:.0f}s" if elapsed > timeout else f"RSS > {rss_cap / 2**30:.0f} GiB"
            os.killpg(proc.pid, 9)
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    result = {"wall_seconds": round(wall, 2), "peak_rss_gib": round(peak / 2**30, 3)}
    if stopped:
        result["stopped"] = stopped
        return result
    lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        result["error"] = (err.strip().splitlines() or ["exit %d" % proc.returncode])[-1][:300]
        return result
    result.update(json.loads(lines[-1]))
    return result


# ---- the measured children -------------------------------------------------------------
def child_floor(path: str, schema_path: str, threads: int) -> None:
    import duckdb

    from dpsynth.data.schema import Schema

    names = ", ".join(f'"{n}"' for n in Schema.load(schema_path).names)
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    start = time.perf_counter()
    con.execute(f"SELECT count(*), sum(hash({names})) FROM read_parquet('{path}')").fetchall()
    print(json.dumps({"scan_seconds": round(time.perf_counter() - start, 2)}))


def child_fit(path: str, schema_path: str, backend: str, generator: str, threads: int, epsilon: float,
              memory_limit: str, params: str = "{}", rule: str = "rule") -> None:
    import numpy as np

    from dpsynth.data.schema import Schema
    from dpsynth.data.table import TableData
    from dpsynth.generators.registry import get_generator_class
    import dpsynth.generators  # noqa: F401  (registers the generators)
    from dpsynth.privacy.budget import Budget
    from dpsynth.scale.source import TableSource

    schema = Schema.load(schema_path)
    budget = Budget(epsilon=epsilon, delta=1e-9)
    gen = get_generator_class(generator)(**json.loads(params))
    start = time.perf_counter()
    load_seconds = 0.0
    if backend == "numpy":
        import pandas as pd

        frame = schema.prepare(pd.read_parquet(path), source=path)
        data = TableData(frame, schema)
        load_seconds = time.perf_counter() - start
    else:
        data = TableSource(Path(path), schema, engine=backend, threads=threads, memory_limit=memory_limit)
    why = None
    if rule == "rule":  # aim's public large-table rule, as on the CLI's engine path (the whole file is training rows)
        from dpsynth.scale.aim_bound import apply_large_table_rule
        from dpsynth.scale.source import count_rows

        why = apply_large_table_rule(gen, count_rows(Path(path)), len(schema.names))
    stats = {}
    if backend != "numpy":  # keep the counter's statistics (covers, seconds counting)
        from dpsynth.scale import counting as source_module

        opened = source_module.open_counts

        def open_counts(src, bins):
            counter = opened(src, bins)
            stats["counter"] = counter.stats
            return counter

        source_module.open_counts = open_counts
    gen.fit(data, budget=budget, rng=np.random.default_rng(0))
    total = time.perf_counter() - start
    counter = stats.get("counter", {})
    print(json.dumps({"fit_seconds": round(total, 2), "load_seconds": round(load_seconds, 2),
                      "count_seconds": round(counter.get("count_seconds", 0.0), 2),
                      "encode_seconds": round(counter.get("encode_seconds", 0.0), 2), "covers": counter.get("covers"),
                      "epsilon": round(gen.ledger_.epsilon(), 4), "epsilon_exact": gen.ledger_.epsilon(),
                      "rule": why, "aim_params": {"max_iterations": gen.max_iterations,
                                                  "max_model_size": gen.max_model_size} if generator == "aim" else None, "ledger_entries": len(gen.ledger_.to_dict()["entries"])
                      if "entries" in gen.ledger_.to_dict() else None}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 100_000_000])
    parser.add_argument("--backends", nargs="+", default=["duckdb", "numpy", "spark"])
    parser.add_argument("--generators", nargs="+", default=["aim", "mst", "independent"])
    parser.add_argument("--params", default="{}", help="JSON generator parameters for aim, e.g. the compute bound")
    parser.add_argument("--aim-bound", action="store_true",
                        help="aim with dpsynth.scale.aim_bound.COMPUTE_BOUND (max_iterations 32, max_model_size 4 MB)")
    parser.add_argument("--no-aim-rule", action="store_true",
                        help="aim without the public large-table rule (dpsynth.scale.aim_bound.large_table_rule)")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit / Spark driver memory")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--rss-cap-gib", type=float, default=12)
    parser.add_argument("--data-dir", type=Path, default=HERE / "results" / "scale_data")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scale.json")
    parser.add_argument("--cleanup", action="store_true", help="delete the replicated files afterwards")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "floor":
            child_floor(rest[0], rest[1], int(rest[2]))
        else:
            child_fit(rest[0], rest[1], rest[2], rest[3], int(rest[4]), float(rest[5]), rest[6], *rest[7:])
        return

    from scale_data import bench_schema, write_replicated

    args.data_dir.mkdir(parents=True, exist_ok=True)
    schema_path = bench_schema(args.data_dir)
    results = json.loads(args.out.read_text()) if args.out.exists() else []
    me = [sys.executable, str(Path(__file__).resolve())]
    for rows in args.rows:
        path = write_replicated(rows, args.data_dir, threads=args.threads)
        size = path.stat().st_size
        floor = run_measured(me + ["--child", "floor", str(path), str(schema_path), str(args.threads)],
                             timeout=args.timeout, rss_cap=int(args.rss_cap_gib * 2**30))
        record = {"rows": rows, "file_mib": round(size / 2**20, 1), "floor": floor, "load_before": os.getloadavg()}
        print(json.dumps(record), flush=True)
        for backend, generator in ((b, g) for b in args.backends for g in args.generators):
            params = json.loads(args.params) if generator == "aim" else {}
            if generator == "aim" and args.aim_bound:
                from dpsynth.scale.aim_bound import bounded

                params = bounded(params)
            load_before = [round(x, 2) for x in os.getloadavg()]
            res = run_measured(me + ["--child", "fit", str(path), str(schema_path), backend, generator,
                                     str(args.threads), str(args.epsilon), args.memory_limit, json.dumps(params),
                                     "norule" if args.no_aim_rule else "rule"],
                               timeout=args.timeout, rss_cap=int(args.rss_cap_gib * 2**30))
            entry = {"rows": rows, "backend": backend, "generator": generator, "params": params,
                     "epsilon": args.epsilon, "threads": args.threads, "floor_scan_seconds": floor.get("scan_seconds"),
                     "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()], **res}
            print(json.dumps(entry), flush=True)
            results.append(entry)
            args.out.write_text(json.dumps(results, indent=1))
        if args.cleanup:
            path.unlink()


if __name__ == "__main__":
    main()
