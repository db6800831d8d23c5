"""evaluation/summarise_dpsgd_grid.py: defaults only, first record of a key wins, the eps-4 drop flag."""

from __future__ import annotations

import json

from evaluation.summarise_dpsgd_grid import drop_flag, load


def _run(table, method, setting, eps, seed, tstr, trtr=0.8):
    return {"table": table, "method": method, "setting": setting, "epsilon": eps, "seed": seed, "rows": 500,
            "tstr": {"val": tstr, "test": tstr}, "trtr": {"val": trtr, "test": trtr}}


def test_load_keeps_defaults_and_first_record(tmp_path):
    path = tmp_path / "runs.jsonl"
    runs = [_run("t", "dp-gan", "s750b", 1.0, 0, 0.4), _run("t", "dp-gan", "s750b", 1.0, 0, 0.8),  # repeat: first wins
            _run("t", "dp-gan", "s250", 1.0, 1, 0.8), _run("t", "dp-diffusion", "s500m4b", 1.0, 0, 0.6)]
    path.write_text("\n".join(json.dumps(r) for r in runs) + "\n")
    cells = load(path)
    assert cells[("t", "dp-gan", 1.0)] == [0.4 / 0.8]
    assert cells[("t", "dp-diffusion", 1.0)] == [0.6 / 0.8]
    assert len(cells) == 2


def test_drop_flag_needs_two_standard_errors():
    assert drop_flag([0.90, 0.92, 0.91], [0.70, 0.72, 0.71])  # far below
    assert not drop_flag([0.90, 0.92, 0.91], [0.89, 0.93, 0.90])  # within noise
    assert not drop_flag([0.90, 0.70, 0.50], [0.60, 0.80, 0.40])  # spread too wide
    assert not drop_flag([0.9], [0.1])  # one seed: no standard error
