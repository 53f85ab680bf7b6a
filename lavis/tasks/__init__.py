"""Registered tasks (``registry.get("task", name)``)."""

from lavis.tasks.base_task import BaseTask

__all__ = ["BaseTask"]
