"""The base class every registered model derives from."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class BaseModel(nn.Module):
    """A registered model: its config section maps one-to-one onto ``__init__``.

    ``DEFAULT_CONFIGS`` maps each ``model_type`` to its default YAML (relative to ``configs/``);
    ``default_model_type`` is used when a config names none. ``forward(samples)`` returns a dict
    with a ``loss``; captioners add ``generate(samples, ...)``.
    """

    DEFAULT_CONFIGS: ClassVar[dict[str, str]] = {}
    default_model_type: ClassVar[str | None] = None

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> BaseModel:
        return cls(**cfg)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
