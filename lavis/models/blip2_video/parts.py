"""Small helpers shared by the captioner's parts."""

from __future__ import annotations

import torch
from torch import nn

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FROZEN_MARK = "_lavis_frozen"  # an attribute no submodule is likely to be named


def freeze(module: nn.Module) -> None:
    """No gradients, and eval mode (no dropout), for ``module`` and every module in it now.

    Each of those modules is marked, so that ``keep_frozen_in_eval`` can tell the frozen part's
    own modules from adapters added into it later (LoRA layers and their dropout), which train.
    """
    module.requires_grad_(False)
    module.eval()
    for inner in module.modules():
        setattr(inner, FROZEN_MARK, True)


def keep_frozen_in_eval(root: nn.Module) -> None:
    """After ``root.train()``: put the frozen parts' own modules back into eval mode.

    A module stays in training mode when it was added after ``freeze`` (a LoRA layer, its
    ``lora_dropout``), or when it lies in a module whose parameters all train again. So a frozen
    LLM's own dropout stays off (its output is deterministic) while its adapters' dropout works.
    """
    if _all_trainable(root):
        return
    if getattr(root, FROZEN_MARK, False) is True:
        root.training = False  # this module only: its children decide for themselves
    for child in root.children():
        keep_frozen_in_eval(child)


def _all_trainable(module: nn.Module) -> bool:
    """Whether ``module`` has parameters and every one of them trains."""
    flags = [p.requires_grad for p in module.parameters()]
    return bool(flags) and all(flags)
