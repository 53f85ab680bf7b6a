"""Registered models (``registry.get("model", name)``) and LAVIS's loading helpers."""

from lavis.models import blip2_video  # noqa: F401  (registration)
from lavis.models.base_model import BaseModel

__all__ = ["BaseModel"]
