"""The base class every registered dataset builder derives from."""

from __future__ import annotations

from typing import ClassVar

from torch.utils.data import Dataset


class BaseDatasetBuilder:
    """Builds the splits of one dataset; its config section maps one-to-one onto ``__init__``.

    ``DEFAULT_CONFIGS`` maps a dataset ``type`` (``datasets.<name>.type``, default ``default``)
    to the builder's default YAML, relative to ``configs/``.
    """

    DEFAULT_CONFIGS: ClassVar[dict[str, str]] = {}

    def build_datasets(self) -> dict[str, Dataset]:
        """Split name (``train``, ``val``, ``test``) -> dataset."""
        raise NotImplementedError
