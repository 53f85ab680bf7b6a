"""Registered dataset builders (``registry.get("builder", name)``)."""

from lavis.datasets.builders.base_builder import BaseDatasetBuilder
from lavis.datasets.builders.caption_builder import VideoCaptionBuilder

__all__ = ["BaseDatasetBuilder", "VideoCaptionBuilder"]
