"""The base class of tasks: what one training step and one evaluation mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from lavis.common.config import Config
from lavis.common.registry import registry


class BaseTask:
    """A task builds its model and datasets and defines train/valid steps and metrics.

    Its constructor's parameters are extra keys of the ``run`` section (e.g. ``num_beams``).
    ``valid_step`` returns one result dict per sample, in batch order (including an error result
    for each sample listed in ``batch["skipped"]``, which the dataset could not load); the runner
    gathers them from all ranks in dataset order and hands the complete list to ``evaluate``.
    """

    def check_ready(self, cfg: Config) -> None:
        """Raise before anything heavy starts if the task could not finish (e.g. a missing tool)."""

    def build_model(self, cfg: Config) -> nn.Module:
        model_cls = registry.get("model", cfg.model["arch"])
        return model_cls.from_config(cfg.model_kwargs())

    def build_datasets(self, cfg: Config) -> dict[str, dict[str, Dataset]]:
        """Dataset name -> split name -> dataset, from every builder in ``datasets``."""
        return {
            name: registry.get("builder", name)(**kwargs).build_datasets()
            for name, kwargs in cfg.datasets.items()
        }

    def train_step(self, model: nn.Module, batch: dict[str, Any]):
        """The loss tensor, or ``{"loss": tensor, **scalars}`` whose scalars are logged too."""
        return model(batch)["loss"]

    def valid_step(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def evaluate(
        self, results: list[dict[str, Any]], split: str, dataset: Dataset, output_dir: Path
    ) -> dict[str, float]:
        """Metrics for one split; must include the key the run selects checkpoints by."""
        raise NotImplementedError
