"""Datasets, their builders and samplers."""

from lavis.datasets import builders  # noqa: F401  (registration)
