"""Loading a ``transformers`` model for a pipeline stage: local files only, bf16 on GPU, and
split across a tensor-parallel group when the job has one (``tp_plan="auto"`` on its mesh)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_for_inference(auto_cls: Any, folder: str | Path, device: torch.device, tp_mesh: Any = None,
                       trust_remote_code: bool = False, **kwargs: Any) -> torch.nn.Module:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    common = dict(local_files_only=True, trust_remote_code=trust_remote_code, dtype=dtype, **kwargs)
    if tp_mesh is not None:
        return auto_cls.from_pretrained(folder, **_tensor_parallel(tp_mesh), **common).eval()
    return auto_cls.from_pretrained(folder, **common).to(device).eval()


def _tensor_parallel(tp_mesh: Any) -> dict[str, Any]:
    """``from_pretrained`` arguments that split the model across this rank's group only.

    transformers 5 builds its own ``(dp_replicate, tp)`` mesh from a ``DistributedConfig`` and
    ignores a sub-mesh given with ``tp_plan``: it would shard over every rank of the job. Its
    layout (tp innermost) groups consecutive ranks, as the pipeline's ``Layout`` does. Older
    versions take the group's mesh directly.
    """
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        return {"tp_plan": "auto", "device_mesh": tp_mesh}
    tp_size = tp_mesh.size()
    return {"distributed_config": transformers.DistributedConfig(
        tp_plan="auto", tp_size=tp_size, dp_replicate_size=torch.distributed.get_world_size() // tp_size)}
