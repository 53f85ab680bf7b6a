"""Registered runners (``registry.get("runner", name)``)."""

from lavis.runners.step_runner import StepRunner

__all__ = ["StepRunner"]
