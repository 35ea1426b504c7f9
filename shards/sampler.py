"""One sampler for every loader: which clips, in which order, with which crop, on which rank and worker.

- Order: a permutation from (seed, epoch): reproducible, different every epoch.
- Partition: sample-level, strided over ranks (rank r takes positions r, r+W, ...), then batches are dealt
  to data-loader workers round-robin, which is also the order PyTorch's DataLoader yields them in.
- Every rank gets the same number of batches: the remainder is dropped, never padded with repeats.
- Resume: the state is (epoch, batches consumed); starting from it neither replays nor skips a sample.
- Crops: each sample's 0.95-s window start is drawn from (seed, epoch) too, so both loaders (torch and
  DALI) see the same crops and a resumed epoch sees the crops it would have.
- A random permutation of the diet's clips mixes corpora in proportion to their clip counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class LoaderState:
    epoch: int = 0
    batch: int = 0  # batches of this epoch already consumed on this rank

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    @classmethod
    def from_dict(cls, data: dict) -> LoaderState:
        return cls(epoch=int(data["epoch"]), batch=int(data["batch"]))


@dataclass(frozen=True, slots=True)
class Sampler:
    num_clips: int
    batch_size: int
    seed: int = 42
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank={self.rank} must be in [0, world_size={self.world_size})")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size={self.batch_size} must be > 0")
        if self.batches_per_epoch() == 0:
            raise ValueError(f"{self.num_clips} clips cannot give one batch of {self.batch_size} "
                             f"on each of {self.world_size} ranks")

    def batches_per_epoch(self) -> int:
        return self.num_clips // self.world_size // self.batch_size

    def rank_order(self, epoch: int) -> np.ndarray:
        """This rank's sample indices for `epoch`, exactly batches_per_epoch * batch_size of them."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_clips)
        return order[self.rank::self.world_size][: self.batches_per_epoch() * self.batch_size]

    def crop_fractions(self, epoch: int) -> np.ndarray:
        """Per sample (by index), where in [0, 1) of its croppable span this epoch's crop starts."""
        return np.random.default_rng([self.seed, epoch, 1]).random(self.num_clips)

    def batches(self, state: LoaderState = LoaderState(), worker: int = 0,
                num_workers: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        """(batch number, sample indices) of `state.epoch` from `state.batch` on, for one loader worker."""
        order = self.rank_order(state.epoch)
        for b in range(state.batch, self.batches_per_epoch()):
            if (b - state.batch) % num_workers == worker:
                yield b, order[b * self.batch_size:(b + 1) * self.batch_size]


def crop_starts(frames: np.ndarray, fractions: np.ndarray, crop: int) -> np.ndarray:
    """First sample of each crop: uniform over the valid starts; 0 for clips shorter than the crop."""
    span = np.maximum(frames - crop + 1, 1)
    return np.minimum((fractions * span).astype(np.int64), span - 1)
