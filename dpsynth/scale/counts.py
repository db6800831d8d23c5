"""Exact marginal counts behind one small interface, for the measurer of the marginal generators.

A counter answers ``counts(cliques)``: for each clique (a tuple of column indices) the exact
count of every cell of its marginal, flattened in C order over the clique's columns and
zero-filled to the public domain (``sizes``), as float64. PRIVATE: only a charged mechanism
(:class:`dpsynth.generators.tabular.marginal.measure.Measurer`) may read them.

- ``ArrayCounts``: codes held in memory (the numpy path; ``np.bincount`` per marginal);
- ``CubeCounts``: the base of the engine counters. It plans a few cover cubes per request
  (:mod:`dpsynth.scale.covers`), asks the engine for each cube once (``_count_cover``), keeps
  the cubes and answers every clique by summing its cube over the other columns. Only cubes of
  counts are held, never a row;
- ``RecodedCounts``: the counts of another counter on merged codes (MST's domain compression),
  summed cell by cell, so they equal the counts of the recoded table exactly.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from dpsynth.scale.covers import Clique, plan_covers

# a cover cube holds at most this many cells (2 MiB of int64); larger cliques are counted alone
MAX_COVER_CELLS = 2**18


class ArrayCounts:
    """Counts of an in-memory (n_rows, n_columns) array of codes."""

    def __init__(self, codes: np.ndarray, sizes: Sequence[int]) -> None:
        self._codes = codes
        self.sizes = tuple(int(s) for s in sizes)
        self.n_rows = int(codes.shape[0])

    def counts(self, cliques: Sequence[Clique]) -> list[np.ndarray]:
        out = []
        for clique in cliques:
            shape = tuple(self.sizes[a] for a in clique)
            index = np.ravel_multi_index(tuple(self._codes[:, a] for a in clique), shape) if clique else 0
            out.append(np.bincount(np.atleast_1d(index), minlength=int(np.prod(shape))).astype(float))
        return out

    def close(self) -> None:
        pass


def marginal_of(cube: np.ndarray, cover: Clique, clique: Clique) -> np.ndarray:
    """The flattened marginal of ``clique`` (in its column order) from a cube over ``cover``."""
    keep = [cover.index(a) for a in clique]
    summed = cube.sum(axis=tuple(i for i in range(len(cover)) if i not in keep))
    order = sorted(range(len(keep)), key=lambda i: keep[i])  # axes of `summed`, in cover order
    return np.transpose(summed, np.argsort(order)).ravel() if len(keep) > 1 else np.asarray(summed).ravel()


class CubeCounts:
    """Counts from an engine: cover cubes counted once each, marginals summed from them."""

    engine = "engine"

    def __init__(self, sizes: Sequence[int], *, max_cells: int = MAX_COVER_CELLS) -> None:
        self.sizes = tuple(int(s) for s in sizes)
        self.max_cells = max_cells
        self._cubes: dict[Clique, np.ndarray] = {}
        self.stats = {"covers": 0, "count_seconds": 0.0}

    def _count_cover(self, cover: Clique) -> np.ndarray:
        """The dense int64 cube of exact counts over ``cover`` (shape sizes[cover])."""
        raise NotImplementedError

    def _holder(self, clique: Clique) -> Clique | None:
        q = set(clique)
        held = [c for c in self._cubes if q <= set(c)]
        return min(held, key=len) if held else None

    def prefetch(self, cliques: Sequence[Clique]) -> None:
        """Count the covers of every clique not yet answerable (one engine pass per cover)."""
        todo = [c for c in cliques if self._holder(c) is None]
        if not todo:
            return
        start = time.perf_counter()
        for cover in plan_covers(todo, self.sizes, max_cells=self.max_cells):
            cube = self._count_cover(cover)
            if cube.shape != tuple(self.sizes[a] for a in cover):
                raise RuntimeError(f"{self.engine}: cube of {cover} has shape {cube.shape}")
            self._cubes[cover] = cube
            self.stats["covers"] += 1
        self.stats["count_seconds"] += time.perf_counter() - start

    def counts(self, cliques: Sequence[Clique]) -> list[np.ndarray]:
        self.prefetch(cliques)
        out = []
        for clique in cliques:
            if not clique:
                out.append(np.array([float(self.n_rows)]))
                continue
            cover = self._holder(clique)
            out.append(marginal_of(self._cubes[cover], cover, tuple(clique)).astype(float))
        return out

    def close(self) -> None:
        self._cubes.clear()


class RecodedCounts:
    """The counts of ``inner`` with column j's codes mapped through ``maps[j]``."""

    def __init__(self, inner, maps: Sequence[np.ndarray]) -> None:
        self._inner = inner
        self._maps = [np.asarray(m, dtype=np.int64) for m in maps]
        self.sizes = tuple(int(m.max()) + 1 for m in self._maps)
        self.n_rows = inner.n_rows

    def counts(self, cliques: Sequence[Clique]) -> list[np.ndarray]:
        out = []
        for clique, flat in zip(cliques, self._inner.counts(cliques)):
            table = flat.reshape(tuple(self._inner.sizes[a] for a in clique))
            for axis, a in enumerate(clique):
                onehot = np.zeros((len(self._maps[a]), self.sizes[a]))
                onehot[np.arange(len(self._maps[a])), self._maps[a]] = 1.0
                table = np.moveaxis(np.tensordot(table, onehot, axes=([axis], [0])), -1, axis)
            out.append(np.ascontiguousarray(table).ravel())
        return out

    def prefetch(self, cliques: Sequence[Clique]) -> None:
        if hasattr(self._inner, "prefetch"):
            self._inner.prefetch(cliques)

    def close(self) -> None:
        pass
