"""Datasets, their builders, samplers and video I/O."""

from lavis.datasets import builders, video  # noqa: F401  (registration)
