"""Deterministic, resumable batch order shared by every process of a run.

Each epoch's order is a pure function of ``(seed, epoch)``: indices are shuffled, and with length
grouping they are cut into mega-batches of ``group_size`` global batches whose samples are sorted by
length (so a batch holds samples of similar length and wastes little padding), then the batches are
shuffled again. A *global* batch holds ``batch_size * world_size`` samples; process ``rank`` takes the
slice ``[rank * batch_size, (rank + 1) * batch_size)`` of it. Consequently one process with batch 2B
sees exactly the samples that two processes with batch B see together, which makes DDP testable
against a single process, and the position ``(epoch, batch_in_epoch)`` is all a resume needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class BatchPosition:
    epoch: int = 0
    batch: int = 0  # global batches already consumed in this epoch


class ResumableBatchSampler:
    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        world_size: int = 1,
        rank: int = 0,
        group_by_length: bool = True,
        group_size: int = 16,
    ) -> None:
        if len(lengths) < batch_size * world_size:
            raise ValueError(
                f"dataset has {len(lengths)} samples, fewer than one global batch "
                f"({batch_size} per process x {world_size} processes)"
            )
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.world_size = world_size
        self.rank = rank
        self.group_by_length = group_by_length
        self.group_size = group_size
        self.position = BatchPosition()

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def batches_per_epoch(self) -> int:
        return len(self.lengths) // self.global_batch  # the incomplete last batch is dropped

    def epoch_order(self, epoch: int) -> list[np.ndarray]:
        """The global batches of ``epoch`` (arrays of dataset indices), in order."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        n = self.batches_per_epoch() * self.global_batch
        order = order[:n]
        if self.group_by_length:
            mega = self.global_batch * self.group_size
            chunks = [order[i : i + mega] for i in range(0, n, mega)]
            order = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        batches = order.reshape(-1, self.global_batch)
        if self.group_by_length:
            batches = batches[rng.permutation(len(batches))]
        return list(batches)

    def batches_from(self, position: BatchPosition) -> Iterator[tuple[list[int], BatchPosition]]:
        """Endless: this process's slice of each global batch from ``position`` on, each paired with the
        position *after* it. Pure: ``self.position`` is left alone, so a consumer that loads batches
        ahead (:mod:`dreamvlx.train.loader`) records only the batches it has actually used."""
        epoch, batch = position.epoch, position.batch
        lo = self.rank * self.batch_size
        while True:
            batches = self.epoch_order(epoch)
            while batch < len(batches):
                indices = [int(i) for i in batches[batch][lo : lo + self.batch_size]]
                batch += 1
                yield indices, BatchPosition(epoch=epoch, batch=batch)
            epoch, batch = epoch + 1, 0

    def __iter__(self) -> Iterator[list[int]]:
        """Endless: yields this process's slice of each global batch, advancing ``position``."""
        for indices, after in self.batches_from(self.position):
            self.position = after
            yield indices

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.position.epoch, "batch": self.position.batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = BatchPosition(epoch=int(state["epoch"]), batch=int(state["batch"]))
