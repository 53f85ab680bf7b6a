"""Registered tasks (``registry.get("task", name)``)."""

from lavis.tasks.base_task import BaseTask
from lavis.tasks.captioning import CaptionTask
from lavis.tasks.frame_selection import FrameSelectionTask
from lavis.tasks.scst import SCSTTask

__all__ = ["BaseTask", "CaptionTask", "FrameSelectionTask", "SCSTTask"]
