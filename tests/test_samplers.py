import random

import numpy as np
import torch
from torch.utils.data import Dataset

from lavis.datasets.samplers import SeededDataset, ShardSampler, TrainSampler


def test_ranks_together_draw_the_single_process_global_batches():
    n, batch, world = 37, 4, 2
    single = [i for _, i in TrainSampler(n, 0, 1, seed=3, epoch=1)]
    ranks = [[i for _, i in TrainSampler(n, r, world, seed=3, epoch=1)] for r in range(world)]
    for k in range(len(ranks[0]) // batch):
        together = sorted(i for r in ranks for i in r[k * batch : (k + 1) * batch])
        assert together == sorted(single[k * batch * world : (k + 1) * batch * world])
    assert set(single) == set(range(n))
    assert len(ranks[0]) == len(ranks[1]) == 19  # padded by wrapping around


def test_epochs_differ_and_start_skips_exactly():
    a = [i for _, i in TrainSampler(50, 1, 2, seed=0, epoch=0)]
    b = [i for _, i in TrainSampler(50, 1, 2, seed=0, epoch=1)]
    assert a != b
    resumed = TrainSampler(50, 1, 2, seed=0, epoch=0, start=8)
    assert [i for _, i in resumed] == a[8:] and len(resumed) == len(a) - 8
    assert {e for e, _ in TrainSampler(50, 0, 2, seed=0, epoch=4)} == {4}


def test_shard_sampler_covers_every_index_once():
    n, world = 11, 4
    shards = [ShardSampler(n, r, world) for r in range(world)]
    indices = sorted(i for s in shards for i in s)
    assert indices == list(range(n))
    padded = [ShardSampler(n, r, world, pad=True) for r in range(world)]
    assert {len(s) for s in padded} == {3}
    assert sorted(i for s in padded for i in s.real) == list(range(n))
    assert [s.num_real for s in padded] == [3, 3, 3, 2]


class RandomItems(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        return (torch.rand(2), random.random(), float(np.random.rand()))


def test_seeded_items_depend_only_on_seed_epoch_and_index():
    ds = SeededDataset(RandomItems(), seed=7)
    first = ds[(0, 3)]
    torch.manual_seed(123)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    again = ds[(0, 3)]
    after = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]
    assert torch.equal(before[0], after[0]) and before[1] == after[1]
    assert np.array_equal(before[2], after[2])  # the caller's random streams are untouched
    assert not torch.equal(ds[(1, 3)][0], first[0]) and not torch.equal(ds[(0, 4)][0], first[0])
