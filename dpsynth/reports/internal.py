"""Where internal evaluations go: a directory outside every run and release bundle.

Anything computed against real rows (TSTR/TRTR scores, attacks, real histograms, subgroup
counts, real images) is an *internal evaluation*. It is written to ``internal_eval/<run name>/``
beside the run (or wherever ``--internal-out`` says), never inside a run or bundle, and each
of its files says on its first line that it holds real-data statistics and stays inside.
"""

from __future__ import annotations

from pathlib import Path

from dpsynth.errors import DpsynthError

INTERNAL_DIRNAME = "internal_eval"
INTERNAL_NOTICE = ("INTERNAL EVALUATION: contains statistics of the real data; it must stay inside the hospital "
                   "and is never part of a release")
# files whose presence marks a directory as a run or a release bundle
_RUN_MARKERS = ("manifest.json", "ledger.json", "weights.safetensors", "relational.yaml")


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in _RUN_MARKERS)


def default_internal_dir(run_dir: str | Path) -> Path:
    """``internal_eval/<run name>/`` beside the run directory."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / INTERNAL_DIRNAME / run_dir.name


def check_outside_runs(out: str | Path, *, what: str = "internal evaluation") -> Path:
    """Refuse an output directory that is, or lies inside, a run directory or release bundle."""
    out = Path(out).resolve()
    for parent in (out, *out.parents):
        if is_model_dir(parent):
            raise DpsynthError(f"{out}: an {what} holds real-data statistics and may not be written inside the "
                               f"model directory {parent}; choose a folder outside it (--internal-out)")
    return out
