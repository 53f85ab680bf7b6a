"""Registered dataset builders (``registry.get("builder", name)``)."""

from lavis.datasets.builders.base_builder import BaseDatasetBuilder
from lavis.datasets.builders.caption_builder import VideoCaptionBuilder
from lavis.datasets.builders.frame_selection_builder import QAFrameMiningBuilder

__all__ = ["BaseDatasetBuilder", "QAFrameMiningBuilder", "VideoCaptionBuilder"]
