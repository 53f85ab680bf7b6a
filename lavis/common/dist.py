"""Process-group set-up and the few collectives the project needs.

Works the same under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK), under SLURM ``srun``
(SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID) and as a plain single process, where no process
group exists and every collective degrades to the local value (no barrier outside a group).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from lavis.common.lifetime import end_with_parent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    launcher: str  # "torchrun", "slurm" or "none"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def detect_env(environ: dict[str, str] | None = None) -> DistEnv:
    """Read the launcher's variables; a plain ``python train.py`` is rank 0 of 1."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistEnv(
            int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)), "torchrun"
        )
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return DistEnv(
            int(env["SLURM_PROCID"]),
            int(env["SLURM_NTASKS"]),
            int(env.get("SLURM_LOCALID", 0)),
            "slurm",
        )
    return DistEnv(0, 1, 0, "none")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: this rank's GPU (its local rank under torchrun or SLURM) when there is one, else
    the CPU; a bare ``cuda`` also means this rank's GPU. Anything else is taken as written."""
    local_rank = detect_env().local_rank
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


def _slurm_master_addr() -> str:
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if nodelist and shutil.which("scontrol"):
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist],
            capture_output=True, text=True, check=True, timeout=60,
        )
        return out.stdout.split()[0]
    raise RuntimeError(
        "running under SLURM without MASTER_ADDR: export MASTER_ADDR (the first node's host "
        "name) and MASTER_PORT, or launch with torchrun"
    )


def init_distributed(backend: str | None = None, timeout_minutes: float = 30.0) -> DistEnv:
    """Join the process group the launcher describes (no-op for a single process). A launched
    rank ends with its launcher: torchrun gives each rank a session of its own, so killing
    torchrun, even its process group, would otherwise leave the ranks running."""
    env = detect_env()
    if env.launcher != "none":  # the kernel's signal only where the launcher forks from its main thread
        end_with_parent(f"rank {env.rank}", kernel="TORCHELASTIC_RUN_ID" in os.environ)
    if not env.distributed:
        return env
    if dist.is_initialized():
        return env
    if env.launcher == "slurm":
        os.environ.setdefault("MASTER_ADDR", _slurm_master_addr())
        os.environ.setdefault("MASTER_PORT", "29500")
        os.environ.setdefault("RANK", str(env.rank))
        os.environ.setdefault("WORLD_SIZE", str(env.world_size))
        os.environ.setdefault("LOCAL_RANK", str(env.local_rank))
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(env.local_rank)
    backend = backend or ("nccl" if use_cuda else "gloo")
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=env.rank,
        world_size=env.world_size,
        timeout=datetime.timedelta(minutes=timeout_minutes),
        device_id=torch.device("cuda", env.local_rank) if backend == "nccl" else None,
    )
    logger.info(
        "process group ready: backend=%s world_size=%d (%s)", backend, env.world_size, env.launcher
    )
    return env


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` for a single process)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0, group: Any = None) -> Any:
    """``obj`` as (global) rank ``src`` has it, on every rank of ``group`` (default: all)."""
    if not is_dist():
        return obj
    box = [obj if get_rank() == src else None]
    dist.broadcast_object_list(box, src=src, group=group)
    return box[0]


def all_reduce_mean(value: float) -> float:
    """The mean of a scalar over ranks (for logging, e.g. the training loss)."""
    if not is_dist():
        return float(value)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / get_world_size()


@contextlib.contextmanager
def gathered_parameters(module: torch.nn.Module) -> Iterator[None]:
    """Unshard every FSDP-sharded part of ``module`` for calls that bypass ``forward`` (such as
    ``generate``, which runs submodules without the hooks that would gather their weights)."""
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in module.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()


def cleanup() -> None:
    """Destroy the process group, then give gloo's worker threads the GIL for a moment.

    After ``shutdown`` a worker may still be freeing its last finished work, whose tensors need
    the GIL; a DDP wrapper freed right afterwards (when ``main`` returns) joins that thread while
    holding the GIL, and the process hangs forever (seen at the end of a 2-rank CPU training).
    """
    if is_dist():
        dist.destroy_process_group()
        time.sleep(0.2)
