"""Registered pipeline stages (``registry.get("stage", name)``).

The stage modules are imported by ``register_stages()`` (the pipeline config calls it), not on
import of this package, so ``python -m lavis.pipeline.stages.camera_motion`` runs its module once.
"""

import importlib

from lavis.pipeline.stages.base import Clip, Stage, build_stage

STAGE_MODULES = (
    "api_caption", "audio_caption", "av_sync", "camera_motion", "image_caption", "object_detection", "tagging",
    "video_caption",
)


def register_stages() -> None:
    for module in STAGE_MODULES:
        importlib.import_module(f"lavis.pipeline.stages.{module}")


__all__ = ["Clip", "Stage", "build_stage", "register_stages"]
