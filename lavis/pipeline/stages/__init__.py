"""Registered pipeline stages (``registry.get("stage", name)``)."""

from lavis.pipeline.stages import camera_motion, video_caption  # noqa: F401  (registration)
from lavis.pipeline.stages.base import Clip, Stage, build_stage

__all__ = ["Clip", "Stage", "build_stage"]
