"""DataLoaders for the runner: resumable training batches, sharded evaluation, split lookup."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from torch.utils.data._utils.collate import default_collate

from lavis.common.lifetime import dataloader_worker_init
from lavis.datasets.samplers import SeededDataset, ShardSampler, TrainSampler, sample_seed


class Position(Protocol):
    """Where training stands in the data (``TrainState`` satisfies it)."""

    epoch: int
    batch_in_epoch: int


def move_to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def collate_fn(dataset: Dataset):
    return getattr(dataset, "collater", None) or default_collate


def _worker_start(parent: int, worker_id: int) -> None:
    """Each DataLoader worker decodes with one thread (automatic threading oversubscribes
    cores) and ends with its rank (``parent``)."""
    torch.set_num_threads(1)
    dataloader_worker_init(parent, worker_id)


def train_batches(
    dataset: Dataset, position: Position, *, batch_size: int, num_workers: int, seed: int,
    rank: int, world_size: int, pin_memory: bool,
) -> Iterator[Any]:
    """Micro-batches forever, epoch after epoch, from where ``position`` says (and updating it)."""
    seeded = SeededDataset(dataset, seed)
    while True:
        sampler = TrainSampler(
            len(dataset), rank, world_size, seed, position.epoch, start=position.batch_in_epoch * batch_size
        )
        loader = DataLoader(
            seeded, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=num_workers,
            collate_fn=collate_fn(dataset), pin_memory=pin_memory,
            worker_init_fn=functools.partial(_worker_start, os.getpid()),
            # Its own generator: creating a loader must not consume the global RNG, or a resumed
            # run (which creates one more loader) would drift from an unbroken one.
            generator=torch.Generator().manual_seed(sample_seed(seed, position.epoch, rank)),
        )
        for batch in loader:
            position.batch_in_epoch += 1
            yield batch
        position.epoch += 1
        position.batch_in_epoch = 0


def eval_loader(
    dataset: Dataset, *, batch_size: int, num_workers: int, seed: int, rank: int, world_size: int,
    pad: bool, pin_memory: bool,
) -> tuple[DataLoader, ShardSampler]:
    """Each sample on exactly one rank (padded with repeats when every rank must step together)."""
    sampler = ShardSampler(len(dataset), rank, world_size, pad=pad)
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, collate_fn=collate_fn(dataset),
        pin_memory=pin_memory, worker_init_fn=functools.partial(_worker_start, os.getpid()),
        generator=torch.Generator().manual_seed(seed),  # leave the global RNG alone
    )
    return loader, sampler


class Splits:
    """Split name -> dataset(s), across every builder of the run."""

    def __init__(self, datasets: dict[str, dict[str, Dataset]]) -> None:
        self.by_name: dict[str, list[Dataset]] = {}
        for per_builder in datasets.values():
            for split, ds in per_builder.items():
                self.by_name.setdefault(split, []).append(ds)

    def one(self, split: str) -> Dataset:
        """The single dataset that has ``split`` (evaluation scores one dataset at a time)."""
        if split not in self.by_name:
            raise KeyError(f"no dataset has a split {split!r} (available: {', '.join(sorted(self.by_name))})")
        parts = self.by_name[split]
        if len(parts) > 1:
            raise ValueError(f"split {split!r} exists in {len(parts)} datasets; evaluate them in separate runs")
        return parts[0]

    def training(self, names: list[str]) -> Dataset:
        """The training splits of all builders, concatenated."""
        parts = [ds for split in names for ds in self.by_name.get(split, [])]
        if not parts:
            raise KeyError(
                f"no dataset has the training split(s) {names} (available: {', '.join(sorted(self.by_name))})"
            )
        if len(parts) == 1:
            return parts[0]
        concat = ConcatDataset(parts)
        concat.collater = getattr(parts[0], "collater", None)  # type: ignore[attr-defined]
        return concat
