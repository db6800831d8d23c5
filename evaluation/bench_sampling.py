"""Benchmark: sampling throughput and memory of a saved dpsynth model writing many rows to Parquet.

Trains one run with `dpsynth.api.train` (default: `independent`, and `aim`, on ACTG 175 at epsilon 1),
then for each run calls `dpsynth.api.generate(model=RUN_DIR, n=N, out=...parquet)` in a fresh
subprocess and records rows/s and that process's peak RSS (ru_maxrss). Memory is "flat" when the peak
RSS for N rows is about the same as for N/10 rows (chunked writing), so both are measured.

    python evaluation/bench_sampling.py                          # 10M rows, independent + aim
    python evaluation/bench_sampling.py --rows 1000000 --generators independent
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from dpsynth.api import generate
run, n, out, chunk = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
res = generate(model=run, n=n, out=out, chunk_rows=chunk)
wall = time.perf_counter() - start
print(json.dumps({"rows": res.rows, "seconds": wall, "rows_per_s": res.rows / wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_after_imports_mb": base}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", nargs="+", default=["independent", "aim"])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--out", default=str(RESULTS / "bench_sampling.json"))
    args = parser.parse_args()

    from dpsynth.api import train
    from dpsynth.config import config_from_dict

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_sampling_") as tmp:
        tmp = Path(tmp)
        for name in args.generators:
            run_dir = tmp / f"run_{name}"
            cfg = config_from_dict({"generator": name, "privacy": {"epsilon": args.epsilon}, "seed": 0})
            res = train(data="actg175", out=run_dir, config=cfg)
            print(f"{name}: trained in {res.fit_seconds:.1f}s (epsilon {res.ledger.epsilon():.3f})", flush=True)
            for n in sorted({args.rows // 10, args.rows}):
                out = tmp / f"{name}_{n}.parquet"
                proc = subprocess.run([sys.executable, "-c", CHILD, str(run_dir), str(n), str(out), str(args.chunk_rows)],
                                      capture_output=True, text=True,
                                      env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
                if proc.returncode != 0:
                    print(f"{name} n={n}: FAILED {proc.stderr.strip().splitlines()[-1]}")
                    continue
                row = {"generator": name, "epsilon": args.epsilon, "chunk_rows": args.chunk_rows,
                       **json.loads(proc.stdout.strip().splitlines()[-1]),
                       "file_mb": out.stat().st_size / 2**20}
                out.unlink()
                results.append(row)
                print(f"{name:12s} n={n:>10,d}  {row['seconds']:7.1f}s  {row['rows_per_s']:>12,.0f} rows/s  "
                      f"peak RSS {row['peak_rss_mb']:.0f} MB (after imports {row['rss_after_imports_mb']:.0f} MB)  "
                      f"file {row['file_mb']:.0f} MB", flush=True)
    best = max(results, key=lambda r: r["rows_per_s"]) if results else None
    summary = ""
    if best:
        big = [r for r in results if r["rows"] == args.rows]
        flat = []
        for r in big:
            small = next((s for s in results if s["generator"] == r["generator"] and s["rows"] == args.rows // 10), None)
            if small:
                flat.append(f"{r['generator']}: peak RSS {small['peak_rss_mb']:.0f} MB at {small['rows']:,} rows vs "
                            f"{r['peak_rss_mb']:.0f} MB at {r['rows']:,} rows")
        summary = (f"fastest {best['generator']} {best['rows_per_s']:,.0f} rows/s writing {best['rows']:,} rows to "
                   f"Parquet (target >= 500k rows/s: {'MET' if best['rows_per_s'] >= 500_000 else 'NOT met'}); "
                   + "; ".join(flat))
        print(summary)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": "shared 2-core CPU box, one thread", "rows": args.rows,
                                          "results": results, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
