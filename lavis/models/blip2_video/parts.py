"""Small helpers shared by the captioner's parts."""

from __future__ import annotations

import torch
from torch import nn

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def freeze(module: nn.Module) -> None:
    """No gradients, and eval mode (no dropout); ``FrozenAwareModule.train`` keeps it there."""
    module.requires_grad_(False)
    module.eval()
    module.frozen = True  # type: ignore[attr-defined]


def keep_frozen_in_eval(root: nn.Module) -> None:
    """After ``root.train()``: put every frozen submodule back into eval mode."""
    for module in root.modules():
        if getattr(module, "frozen", False):
            module.eval()
