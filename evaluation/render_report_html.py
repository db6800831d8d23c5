"""Check that report.html renders: write a report and screenshot it with headless Chromium.

    python evaluation/render_report_html.py [--results results.json] [--out DIR]

Without --results it evaluates ACTG 175 against an independent-marginals baseline first.
Needs the `chromium` binary (apt-get install -y chromium); exits 0 with a note when absent.
The screenshot lands in DIR/report.png; look at it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html_path: Path, png_path: Path, *, width: int = 1280, height: int = 9000, timeout: int = 120) -> Path:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found (apt-get install -y chromium)")
    cmd = [exe, *CHROMIUM_FLAGS, f"--screenshot={png_path}", f"--window-size={width},{height}",
           html_path.resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
    if not png_path.is_file() or png_path.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot to {png_path}")
    return png_path


def _baseline_results() -> dict:
    import numpy as np

    from dpsynth.metrics.suite import evaluate_table
    from evaluation.bench_evaluation import baseline_synthetics, load_splits

    schema, splits = load_splits("actg175", seed=0)
    rng = np.random.default_rng(0)
    synth = baseline_synthetics(splits.train, rng)["independent"]
    return evaluate_table(train=splits.train, holdout=splits.holdout, test=splits.test, synthetic=synth,
                          schema=schema, rng=rng, claimed_epsilon=None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, help="results JSON from evaluate_table (default: compute a baseline)")
    ap.add_argument("--out", type=Path, default=Path("evaluation/results/report_render"))
    args = ap.parse_args(argv)
    if find_chromium() is None:
        print("chromium not installed: skipping the render check (apt-get install -y chromium)")
        return 0
    from dpsynth.reports.report import write_report

    results = json.loads(args.results.read_text()) if args.results else _baseline_results()
    paths = write_report(args.out, results)
    png = screenshot(paths["html"], args.out / "report.png")
    print(f"wrote {paths['html']} ({paths['html'].stat().st_size} bytes) and screenshot {png} "
          f"({png.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
