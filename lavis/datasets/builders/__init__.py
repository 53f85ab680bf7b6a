"""Registered dataset builders (``registry.get("builder", name)``)."""

from lavis.datasets.builders.base_builder import BaseDatasetBuilder

__all__ = ["BaseDatasetBuilder"]
