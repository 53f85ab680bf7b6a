"""Wrapping a model for data parallelism (DDP) or sharding (FSDP, torch's ``fully_shard``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def wrap_model(
    model: nn.Module, wrapper: str, world_size: int, device: torch.device, find_unused_parameters: bool = False
) -> nn.Module:
    """DDP by default, or FSDP (``shard_model``); one process runs the model as it is."""
    if world_size == 1 or wrapper == "none":
        return model
    if wrapper == "ddp":
        return DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters,
        )
    return shard_model(model, device, world_size)


def shard_model(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """FSDP over ``world_size`` ranks, in place: each submodule the model lists in ``fsdp_units()``
    (default: every direct child with parameters), then the root."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world_size,))
    units = getattr(model, "fsdp_units", None)
    modules = units() if callable(units) else [m for m in model.children() if any(True for _ in m.parameters())]
    for module in modules:
        fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


@contextlib.contextmanager
def gradient_sync(wrapped: nn.Module, sharded: bool, sync: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on all but the last micro-batch of a step."""
    if isinstance(wrapped, DistributedDataParallel) and not sync:
        with wrapped.no_sync():
            yield
    elif sharded:
        wrapped.set_requires_gradient_sync(sync)
        yield
    else:
        yield
