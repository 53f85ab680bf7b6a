"""Registered models (``registry.get("model", name)``)."""

from lavis.models.base_model import BaseModel

__all__ = ["BaseModel"]
