"""MST's domain compression: one-way cells whose noisy count is below 3 sigma merge into one.

The merge is decided from the released noisy one-way marginals only (post-processing). The
model then works on the compressed codes; sampling maps a merged code back to one of its
original codes uniformly at random (the model assumes nothing finer). The map is part of the
fitted state (``domain.map.{j}``: original code -> model code, per column).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpsynth.generators.tabular.marginal.estimate import Measurement


@dataclass
class DomainMap:
    """Per column, an int array: original code -> model code."""

    maps: list[np.ndarray]

    @classmethod
    def identity(cls, sizes) -> "DomainMap":
        return cls([np.arange(s, dtype=np.int64) for s in sizes])

    @property
    def model_sizes(self) -> tuple[int, ...]:
        return tuple(int(m.max()) + 1 for m in self.maps)

    def from_model(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, d) model codes -> original codes; a merged code becomes one of its cells uniformly."""
        merged = [j for j, m in enumerate(self.maps) if len(m) != int(m.max()) + 1]
        if not merged:  # compress keeps the order of the cells it does not merge
            return codes
        out = np.array(codes, copy=True)
        for j in merged:
            m = self.maps[j]
            groups = [np.flatnonzero(m == c) for c in range(int(m.max()) + 1)]
            width = np.array([len(g) for g in groups])
            first = np.zeros((len(groups), int(width.max())), dtype=np.int64)
            for c, g in enumerate(groups):
                first[c, : len(g)] = g
            column = codes[:, j]
            pick = np.floor(rng.random(len(column)) * width[column]).astype(np.int64)
            out[:, j] = first[column, pick]
        return out


def compress(measurements: list[Measurement], sizes, *, threshold: float = 3.0) -> tuple[DomainMap, list[Measurement]]:
    """Merge, per column, the cells of its noisy one-way marginal below ``threshold`` x sigma.

    ``measurements`` are one-way marginals, one per column, in column order. Returns the map and
    the one-way measurements re-expressed on the model codes (a merged cell is the sum of its
    cells, with sigma x sqrt(number merged))."""
    maps, out = [], []
    for m, size in zip(measurements, sizes):
        keep = m.values >= threshold * m.sigma
        if keep.sum() >= size - 1:  # at most one small cell: nothing to merge
            maps.append(np.arange(size, dtype=np.int64))
            out.append(m)
            continue
        mapping = np.full(size, int(keep.sum()), dtype=np.int64)
        mapping[keep] = np.arange(int(keep.sum()))
        merged = int((~keep).sum())
        values = np.append(m.values[keep], m.values[~keep].sum())
        sigma = np.append(np.full(int(keep.sum()), m.sigma), m.sigma * np.sqrt(merged))
        maps.append(mapping)
        out.append(Measurement(m.clique, values, sigma))
    return DomainMap(maps), out
