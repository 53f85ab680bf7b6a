"""How a pipeline job's ranks divide the work: data-parallel groups of tensor-parallel ranks.

With ``tp_size = 1`` every rank is its own group and takes its own shards. With ``tp_size > 1``
the ``world`` ranks form ``world / tp_size`` groups of consecutive ranks (a ``(dp, tp)`` device
mesh); the ranks of a group load the large models split across them (``transformers``'
``tp_plan="auto"`` on the group's sub-mesh), work through the same shards in lockstep, and only
the group's first rank writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lavis.common import dist


@dataclass(frozen=True)
class Layout:
    rank: int
    tp_size: int
    group: int  # data-parallel index: which shards this rank's group takes
    num_groups: int
    tp_mesh: Any = None  # the group's 1-D DeviceMesh (None without tensor parallelism)
    tp_group: Any = None  # its process group

    @property
    def writer(self) -> bool:
        return self.rank % self.tp_size == 0

    @property
    def leader(self) -> int:
        """The global rank that writes for this rank's group."""
        return self.rank - self.rank % self.tp_size


def make_layout(tp_size: int = 1, dp_size: int | None = None) -> Layout:
    rank, world = dist.get_rank(), dist.get_world_size()
    if tp_size < 1 or world % tp_size:
        raise ValueError(f"--tp_size {tp_size} must divide the number of ranks ({world})")
    if dp_size is not None and dp_size * tp_size != world:
        raise ValueError(f"--dp_size {dp_size} x --tp_size {tp_size} must equal the number of ranks ({world})")
    if tp_size == 1:
        return Layout(rank, 1, rank, world)
    from torch.distributed.device_mesh import init_device_mesh

    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    mesh = init_device_mesh(device_type, (world // tp_size, tp_size), mesh_dim_names=("dp", "tp"))
    return Layout(rank, tp_size, rank // tp_size, world // tp_size, mesh["tp"], mesh.get_group("tp"))
