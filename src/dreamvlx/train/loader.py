"""Batches for the training loop, optionally read and collated ahead by worker processes.

``data.num_workers == 0`` reads each batch in the training process when it is needed. With ``N > 0``,
a ``torch.utils.data.DataLoader`` of ``N`` workers opens the images, runs the processor and collates
whole batches ahead of the loop (up to ``prefetch_factor`` batches per worker), in the sampler's order.
The batches are the same either way, so a run's weights do not depend on ``num_workers``
(``tests/train/test_trainer.py``). Only collation moves to the workers: the objective's noise (masks,
noise levels) is still drawn in the training process, in step order.

Resume: each batch travels with the sampler position *after* it
(:meth:`ResumableBatchSampler.batches_from`), and the trainer records the position of the batch it has
just used, not the position the workers have read ahead to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from dreamvlx.train.sampler import BatchPosition, ResumableBatchSampler

Collate = Callable[[list[dict[str, Any]], list[int]], dict[str, Any]]
BatchKey = tuple[list[int], BatchPosition]


class _BatchReader:
    """Map-style view of the dataset whose keys are whole batches: ``reader[(indices, position)]``
    returns ``(collated batch, position)``. Picklable, so worker processes can hold it."""

    def __init__(self, dataset: Sequence[dict[str, Any]], collate: Collate) -> None:
        self.dataset = dataset
        self.collate = collate

    def __getitem__(self, key: BatchKey) -> tuple[dict[str, Any], BatchPosition]:
        indices, position = key
        return self.collate([self.dataset[i] for i in indices], indices), position


class _BatchKeys:
    """The sampler's batches from ``start`` on, as an iterable the DataLoader can draw keys from."""

    def __init__(self, sampler: ResumableBatchSampler, start: BatchPosition) -> None:
        self.sampler = sampler
        self.start = start

    def __iter__(self) -> Iterator[BatchKey]:
        return self.sampler.batches_from(self.start)


def _unchanged(item: Any) -> Any:
    return item


def batch_stream(
    sampler: ResumableBatchSampler,
    dataset: Sequence[dict[str, Any]],
    collate: Collate,
    num_workers: int = 0,
    prefetch_factor: int = 4,
) -> Iterator[tuple[dict[str, Any], BatchPosition]]:
    """Endless ``(batch, position after it)`` pairs from ``sampler.position`` on.

    ``collate(samples, indices)`` builds a batch from ``dataset[i]`` for the sampler's ``indices``.
    """
    reader = _BatchReader(dataset, collate)
    keys = _BatchKeys(sampler, sampler.position)
    if num_workers == 0:
        for key in keys:
            yield reader[key]
        return
    loader = torch.utils.data.DataLoader(
        reader,  # type: ignore[arg-type]  # keys are batches, not ints
        sampler=keys,  # type: ignore[arg-type]
        batch_size=None,  # each key is already a whole batch
        collate_fn=_unchanged,
        num_workers=num_workers,
        prefetch_factor=prefetch_factor,
    )
    yield from loader
