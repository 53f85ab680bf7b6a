"""Registered video and text processors (``registry.get("processor", name)``)."""

from typing import Any

from lavis.common.registry import registry
from lavis.processors.text_processors import CaptionProcessor
from lavis.processors.video_processors import VideoEvalProcessor, VideoProcessor, VideoTrainProcessor

__all__ = ["CaptionProcessor", "VideoEvalProcessor", "VideoProcessor", "VideoTrainProcessor", "build_processor"]


def build_processor(spec: dict[str, Any]):
    """``{"name": "video_train", "image_size": 224, ...}`` -> a processor instance."""
    kwargs = dict(spec)
    return registry.get("processor", kwargs.pop("name"))(**kwargs)
