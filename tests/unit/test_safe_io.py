"""dpsynth.safe_io: the lock, the overwrite guard, atomic writes, signal cleanup, size checks."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest

from dpsynth import safe_io
from dpsynth.data.schema import Column
from dpsynth.safe_io import OutputError


def test_lock_refuses_a_second_holder_and_is_removed_at_exit(tmp_path):
    target = tmp_path / "run"
    with safe_io.output_lock(target) as lock:
        assert lock.name == ".run.lock" and lock.read_text().strip() == str(os.getpid())
        with pytest.raises(OutputError, match="another dpsynth process is writing it"):
            with safe_io.output_lock(target):
                pass
        assert lock.exists()  # the refused writer did not remove the holder's lock
    assert not lock.exists() and list(tmp_path.iterdir()) == []


def test_lock_left_by_a_killed_holder_is_taken_over(tmp_path):
    stale = safe_io.lock_path(tmp_path / "out.csv")
    stale.write_text("99999\n")  # a file without a kernel lock, as SIGKILL leaves it
    with safe_io.output_lock(tmp_path / "out.csv"):
        assert stale.read_text().strip() == str(os.getpid())
    assert not stale.exists()


def test_atomic_file_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "g.csv"
    with pytest.raises(RuntimeError):
        with safe_io.atomic_file(out) as tmp:
            tmp.write_text("partial")
            assert tmp.parent == tmp_path and tmp.name.startswith(".g.csv.tmp-")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with safe_io.atomic_file(out) as tmp:
        tmp.write_text("whole")
    assert out.read_text() == "whole" and [p.name for p in tmp_path.iterdir()] == ["g.csv"]


def test_atomic_dir_replaces_only_what_dpsynth_wrote(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "generator.json").write_text("{}")
    with safe_io.atomic_dir(run, overwrite=True) as tmp:
        (tmp / "generator.json").write_text('{"new": 1}')
    assert (run / "generator.json").read_text() == '{"new": 1}'
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match="not a dpsynth run directory"):
        with safe_io.atomic_dir(mine, overwrite=True) as tmp:
            (tmp / "generator.json").write_text("{}")
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "run"]  # no temporary left


def test_output_guards(tmp_path):
    (tmp_path / "f.csv").write_text("x")
    with pytest.raises(OutputError, match="output exists"):
        safe_io.check_output_file(tmp_path / "f.csv", overwrite=False)
    assert safe_io.check_output_file(tmp_path / "f.csv", overwrite=True) == tmp_path / "f.csv"
    with pytest.raises(OutputError, match="is an existing directory"):
        safe_io.check_output_file(tmp_path, overwrite=True)
    with pytest.raises(OutputError, match="which is not a directory"):
        safe_io.check_output_file(tmp_path / "f.csv" / "g.csv", overwrite=False)
    safe_io.check_output_dir(tmp_path / "new" / "run", overwrite=False)  # a path that does not exist yet is fine


def test_signals_raise_turns_sigterm_into_an_exception_and_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(safe_io.Terminated) as info:
        with safe_io.signals_raise():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
    assert info.value.signum == signal.SIGTERM and isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) == before


def test_row_cap_and_free_space(tmp_path):
    safe_io.check_rows(10, max_rows=10)
    with pytest.raises(OutputError, match=r"-n 11 is above --max-rows 10"):
        safe_io.check_rows(11, max_rows=10)
    with pytest.raises(OutputError, match="must be > 0"):
        safe_io.check_rows(0, max_rows=None)
    safe_io.check_free_space(tmp_path / "a.csv", need_bytes=1000, what="10 rows")
    with pytest.raises(OutputError, match=r"a\.csv: 1e\+15 bytes need about 1\.0 PB but .* has only"):
        safe_io.check_free_space(tmp_path / "a.csv", need_bytes=1e15, what="1e+15 bytes")


def test_row_estimate_bounds_the_csv_it_writes(tmp_path):
    cols = [Column("age", "integer", low=0, high=120), Column("w", "continuous", low=-1e6, high=1e6),
            Column("race", "categorical", categories=("white", "black or african american")),
            Column("sex", "binary", categories=(0, 1))]
    frame = pd.DataFrame({"age": [120, 0, 37], "w": [-123456.78901234567, 1 / 3, 1e-7],
                          "race": ["black or african american", "white", "white"], "sex": [0, 1, 1]})
    frame.to_csv(tmp_path / "x.csv", index=False)
    widest = max(len(line) + 1 for line in (tmp_path / "x.csv").read_text().splitlines()[1:])
    assert widest <= safe_io.table_row_bytes(cols) <= 4 * widest
