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
        return auto_cls.from_pretrained(folder, tp_plan="auto", device_mesh=tp_mesh, **common).eval()
    return auto_cls.from_pretrained(folder, **common).to(device).eval()
