"""Samplers that make distributed runs exact: resumable training order, no-duplicate evaluation.

Training: ``TrainSampler`` shuffles with (seed, epoch), gives each rank every world_size-th index
and can start mid-epoch, so a resumed run sees exactly the samples it had not seen. It yields
``(epoch, index)`` keys; ``SeededDataset`` turns a key into a sample whose random augmentations
depend only on (seed, epoch, index), never on worker count, worker order or a restart.

Evaluation: ``ShardSampler`` splits the indices across ranks without repeats; results are
put back in dataset order from the indices each rank reports.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 32-bit seed for one sample in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class TrainSampler(Sampler[tuple[int, int]]):
    """Shuffled, rank-strided, resumable index order for one epoch.

    The epoch's permutation is padded (by wrapping around) to a multiple of ``world_size`` so every
    rank takes the same number of samples; batch ``k`` of all ranks together is then the
    contiguous slice ``perm[k*B*W : (k+1)*B*W]``, the same global batch a single process with
    batch ``B*W`` would draw.
    """

    def __init__(
        self,
        num_samples: int,
        rank: int,
        world_size: int,
        seed: int,
        epoch: int,
        start: int = 0,
        shuffle: bool = True,
    ) -> None:
        if num_samples <= 0:
            raise ValueError("cannot sample from an empty training set")
        self.num_samples = num_samples
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = epoch
        self.start = start
        self.shuffle = shuffle
        self.per_rank = math.ceil(num_samples / world_size)

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = list(range(self.num_samples))
        total = self.per_rank * self.world_size
        order = (order * math.ceil(total / len(order)))[:total]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.indices()[self.start :]:
            yield self.epoch, index

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)


class SeededDataset(Dataset):
    """Wraps a dataset so ``ds[(epoch, index)]`` is reproducible whatever process loads it.

    torch, numpy and ``random`` are seeded from (seed, epoch, index) around each item, and their
    previous states are restored afterwards so the caller's streams (e.g. dropout in the main
    process when ``num_workers=0``) are unaffected.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        s = sample_seed(self.seed, epoch, index)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            random.seed(s)
            np.random.seed(s)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + W, ...``: each sample on exactly one rank, none repeated.

    With ``pad=True`` (needed when every rank must run the same number of forward passes, as
    under FSDP) the shorter shards repeat their last index; ``num_real`` says how many of a
    rank's results are real, so the padding is dropped before gathering.
    """

    def __init__(self, num_samples: int, rank: int, world_size: int, pad: bool = False) -> None:
        self.real = list(range(rank, num_samples, world_size))
        self.num_real = len(self.real)
        target = math.ceil(num_samples / world_size) if pad else self.num_real
        filler = self.real[-1:] if self.real else [0]
        self.order = self.real + filler * (target - self.num_real)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)
