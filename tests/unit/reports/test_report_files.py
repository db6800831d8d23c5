"""report.json / report.md / self-contained report.html and the terminal summary."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.embedded import get_embedded
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.errors import DpsynthError
from dpsynth.metrics.suite import evaluate_table
from dpsynth.reports.report import format_terminal_summary, write_report

FAST = {
    "utility": {"grids": {"logistic_regression": {"C": [1.0]}}},
    "survival": {"penalizers": [0.1]},
    "fidelity": {"max_rows": 500},
    "privacy": {"max_per_side": 200},
}
LEDGER = {"accountant": "rdp", "delta": 1e-5, "epsilon": 1.0, "target_epsilon": 1.0,
          "entries": [{"mechanism": "dp-sgd", "purpose": "generator | training", "noise_multiplier": 1.1,
                       "sample_rate": 0.02, "steps": 300}]}


@pytest.fixture(scope="module")
def results():
    ds = get_embedded("actg175")
    schema = ds.schema()
    splits = split_table(schema.prepare(ds.load()), SplitSpec(seed=0))
    rng = np.random.default_rng(0)
    train = splits.train
    synth = pd.DataFrame({c: train[c].to_numpy()[rng.integers(0, len(train), len(train))] for c in train.columns})
    synth = synth[synth["race"].astype(int) != 1].reset_index(drop=True)  # and drop a subgroup
    return evaluate_table(train=train, holdout=splits.holdout, test=splits.test, synthetic=synth, schema=schema,
                          rng=rng, config=FAST, claimed_epsilon=1.0, claimed_delta=1e-5)


@pytest.fixture(scope="module")
def written(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    card = {"generator": "test", "epsilon": 1.0, "delta": 1e-5}
    return write_report(out, results, ledger_dict=LEDGER, privacy_card=card), results


def test_three_files_and_json_roundtrip(written):
    paths, results = written
    assert {p.name for p in paths.values()} == {"report.json", "report.md", "report.html"}
    data = json.loads(paths["json"].read_text())
    assert data["verdicts"] == results["verdicts"]
    assert data["ledger"]["epsilon"] == 1.0 and data["privacy_card"]["generator"] == "test"


def test_markdown_has_every_section(written):
    md = written[0]["md"].read_text()
    assert md.startswith("**INTERNAL EVALUATION")  # first line: real-data statistics, stays inside
    assert md.splitlines()[4].startswith("**Fit for release at epsilon=1.00: no, because ")
    for heading in ("## Verdicts", "## Claimed vs empirical epsilon", "## Privacy claim", "## Privacy ledger (per mechanism)",
                    "## Appendix: raw ledger entries and privacy card",
                    "## Utility", "## Survival", "## Fidelity", "## Membership attacks", "## Subgroups",
                    "## Fairness"):
        assert heading in md, heading
    assert "race=1" in md and "missing" in md  # the dropped subgroup is visible and flagged
    assert "too small" in md
    assert "generator \\| training" in md  # pipes escaped inside table cells


def test_html_is_self_contained_with_embedded_pngs(written):
    html = written[0]["html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) >= 4  # marginals, heatmap, ROC, groups (+ KM)
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", html)  # nothing fetched from outside
    assert "RED" in html and "GREEN" in html or "AMBER" in html


def test_terminal_summary_fits_one_screen(results):
    text = format_terminal_summary(results)
    lines = text.splitlines()
    assert len(lines) <= 30 and max(len(line) for line in lines) <= 200
    for area in ("UTILITY", "FIDELITY", "PRIVACY", "SUBGROUPS"):
        assert area in text
    assert "claimed 1.000" in text and "empirical lower bound" in text
    assert "race=1" in text  # flagged group named
    assert "\033[" in format_terminal_summary(results, color=True) and "\033[" not in text


def test_bad_results_and_no_matplotlib_on_import(tmp_path):
    with pytest.raises(DpsynthError, match="evaluate_table"):
        write_report(tmp_path, {"utility": {}})
    code = "import sys, dpsynth.reports.report, dpsynth.metrics.suite; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
