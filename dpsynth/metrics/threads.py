"""Run model fits on one thread (OpenMP and BLAS).

HistGradientBoosting's OpenMP workers spin while waiting; on a small shared machine (two cores,
other processes busy) that turns a 0.3 s fit into 20 s. Metrics fit many small models, so each
fit runs single-threaded: slower at best, never pathologically slower.
"""

from __future__ import annotations

from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def one_thread():
    with threadpool_limits(limits=1):
        yield
