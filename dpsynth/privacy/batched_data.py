"""Gather a Poisson batch of a tensor dataset with one indexing operation per tensor.

A ``DataLoader`` over a plain ``TensorDataset`` fetches ``dataset[i]`` for every sampled index
and then stacks the rows (``default_collate``): for a DP-SGD batch of 2,048 table rows that is
thousands of small tensor operations per step, a fifth of a dp-diffusion step on one core (the
non-private loop indexes its tensor once). torch's map-style fetcher uses a dataset's
``__getitems__`` when there is one, so the whole batch is one ``tensor[indices]`` per tensor;
the collate function then has nothing left to stack. Same rows, same order, same values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset, TensorDataset, default_collate


class BatchedTensorDataset(TensorDataset):
    """A ``TensorDataset`` whose DataLoader fetch gathers each batch at once."""

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[index] for t in self.tensors)


def gathered(batch) -> list:
    """Collate of a batch already gathered by :class:`BatchedTensorDataset` (as a list, like
    ``default_collate`` of tuples); a list of rows (a loader over another dataset that reuses this
    collate function) is stacked by ``default_collate`` as usual."""
    if isinstance(batch, tuple) and all(torch.is_tensor(t) for t in batch):
        return list(batch)
    return default_collate(batch)


def batched(dataset: Dataset) -> tuple[Dataset, object]:
    """(dataset, collate_fn) for a DataLoader: a plain TensorDataset is gathered per batch;
    anything else is returned unchanged with the default collate (None)."""
    if type(dataset) is TensorDataset:
        return BatchedTensorDataset(*dataset.tensors), gathered
    return dataset, None
