"""Optimizer parameter groups and per-step learning-rate schedules.

A schedule is a pure function of the optimiser step, so resuming needs no scheduler state
beyond the step itself. Every group's rate is the schedule's rate times the group's
``lr_scale`` (1 when absent), which is how models ask for a smaller rate on some parts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lavis.common.registry import registry


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split into decayed and non-decayed groups.

    A model may define ``optimizer_param_groups(weight_decay)`` to return its own groups (with
    ``lr_scale`` entries); otherwise biases and 1-d parameters (norms) get no weight decay.
    """
    custom = getattr(model, "optimizer_param_groups", None)
    if callable(custom):
        return custom(weight_decay)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or name.endswith(".bias") else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float]
) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters; nothing to optimise")
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


class LRSchedule:
    """Sets every group's ``lr`` for a given step: warmup, then ``decay(progress)``."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        init_lr: float,
        max_steps: int,
        min_lr: float = 0.0,
        warmup_lr: float = 0.0,
        warmup_steps: int = 0,
    ) -> None:
        self.optimizer = optimizer
        self.init_lr = init_lr
        self.min_lr = min_lr
        self.warmup_lr = warmup_lr
        self.warmup_steps = warmup_steps
        self.max_steps = max(max_steps, 1)

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_lr + (self.init_lr - self.warmup_lr) * step / self.warmup_steps
        span = max(self.max_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.decay(progress)

    def decay(self, progress: float) -> float:
        raise NotImplementedError

    def step(self, step: int) -> float:
        """Apply the rate for optimiser step ``step`` (0-based) and return it."""
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr


@registry.register_lr_scheduler("linear_warmup_cosine_lr")
class CosineSchedule(LRSchedule):
    def decay(self, progress: float) -> float:
        return self.min_lr + (self.init_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


@registry.register_lr_scheduler("linear_warmup_linear_lr")
class LinearSchedule(LRSchedule):
    def decay(self, progress: float) -> float:
        return self.init_lr + (self.min_lr - self.init_lr) * progress


@registry.register_lr_scheduler("constant_lr")
class ConstantSchedule(LRSchedule):
    def decay(self, progress: float) -> float:
        return self.init_lr
