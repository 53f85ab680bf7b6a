"""Registered models (``registry.get("model", name)``) and LAVIS's loading helpers."""

from __future__ import annotations

from typing import Any

import torch

from lavis.common.config import MODEL_KEYS, PreprocessConfig, model_config
from lavis.common.registry import registry
from lavis.models import blip2_video  # noqa: F401  (registration)
from lavis.models import clip_frame_selector, image_embedders  # noqa: F401  (registration)
from lavis.models.base_model import BaseModel
from lavis.processors import build_processor

__all__ = ["BaseModel", "build_model", "load_model", "load_model_and_preprocess"]


def load_model(
    name: str, model_type: str | None = None, is_eval: bool = True, device: str | torch.device = "cpu",
    **overrides: Any,
) -> BaseModel:
    """Build a registered model from its default YAML for ``model_type``; ``overrides`` replace
    keys of the model section (nested sections as dicts, e.g. ``language={"path": ...}``)."""
    model, _ = build_model(name, model_type, overrides)
    return _finish(model, is_eval, device)


def load_model_and_preprocess(
    name: str, model_type: str | None = None, is_eval: bool = True, device: str | torch.device = "cpu",
    **overrides: Any,
) -> tuple[BaseModel, dict[str, Any], dict[str, Any]]:
    """The model plus its video and text processors (``{"train": ..., "eval": ...}`` each)."""
    model, preprocess = build_model(name, model_type, overrides)
    vis = {split: build_processor(spec) for split, spec in preprocess.vis_processor.items()}
    txt = {split: build_processor(spec) for split, spec in preprocess.text_processor.items()}
    return _finish(model, is_eval, device), vis, txt


def build_model(
    name: str, model_type: str | None = None, overrides: dict[str, Any] | None = None
) -> tuple[BaseModel, PreprocessConfig]:
    """A registered model from its default YAML for ``model_type`` (< ``overrides``), on the CPU in
    training mode, and its processors' config."""
    section, preprocess = model_config(name, model_type, overrides)
    kwargs = {k: v for k, v in section.items() if k not in MODEL_KEYS}
    return registry.get("model", name).from_config(kwargs), preprocess


def _finish(model: BaseModel, is_eval: bool, device: str | torch.device) -> BaseModel:
    model = model.to(device)
    return model.eval() if is_eval else model
