"""A small, fully specified model/dataset/task used to test the runner end to end.

Loaded through ``run.custom_imports: [tests.plugins.toy]``, the way users register their own
components. The data is a fixed random teacher problem (classify vectors by the teacher's
argmax), so a trained model's accuracy is far above chance and every number is reproducible.
The model has a frozen encoder (exercises the frozen manifest), dropout (exercises RNG state)
and the dataset adds random noise per sample (exercises per-sample seeding).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from lavis.common.registry import registry
from lavis.datasets.builders import BaseDatasetBuilder
from lavis.models import BaseModel
from lavis.tasks import BaseTask

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


class ToyVectors(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, ids: list[str], noise: float) -> None:
        self.x, self.y, self.ids, self.noise = x, y, ids, noise

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict:
        x = self.x[index]
        if self.noise:
            x = x + self.noise * torch.randn_like(x)
        return {"x": x, "label": self.y[index], "id": self.ids[index]}

    def collater(self, samples: list[dict]) -> dict:
        return {
            "x": torch.stack([s["x"] for s in samples]),
            "label": torch.stack([s["label"] for s in samples]),
            "id": [s["id"] for s in samples],
        }


@registry.register_builder("toy_vectors")
class ToyVectorsBuilder(BaseDatasetBuilder):
    """Random vectors labelled by a fixed random teacher."""

    DEFAULT_CONFIGS = {"default": str(CONFIGS / "toy_vectors.yaml")}

    def __init__(
        self, dim: int, num_classes: int, splits: dict[str, int], seed: int = 0, train_noise: float = 0.0
    ) -> None:
        self.dim, self.num_classes, self.splits = dim, num_classes, splits
        self.seed, self.train_noise = seed, train_noise

    def build_datasets(self) -> dict[str, Dataset]:
        g = torch.Generator().manual_seed(self.seed)
        teacher = torch.randn(self.dim, self.num_classes, generator=g)
        out = {}
        for split, n in self.splits.items():
            x = torch.randn(n, self.dim, generator=g)
            y = (x @ teacher).argmax(dim=1)
            noise = self.train_noise if split == "train" else 0.0
            out[split] = ToyVectors(x, y, [f"{split}{i}" for i in range(n)], noise)
        return out


@registry.register_model("toy_classifier")
class ToyClassifier(BaseModel):
    """Frozen random encoder + trainable MLP head with dropout."""

    DEFAULT_CONFIGS = {"base": str(CONFIGS / "toy_classifier_base.yaml"),
                       "wide": str(CONFIGS / "toy_classifier_wide.yaml")}
    default_model_type = "base"

    def __init__(self, dim: int, num_classes: int, hidden: int = 32, dropout: float = 0.1,
                 freeze_encoder: bool = True) -> None:
        super().__init__()
        self.encoder = nn.Linear(dim, dim)
        self.encoder.requires_grad_(not freeze_encoder)
        self.head = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x) + x)

    def forward(self, samples: dict) -> dict:
        return {"loss": nn.functional.cross_entropy(self.logits(samples["x"]), samples["label"])}


@registry.register_task("toy_classification")
class ToyClassificationTask(BaseTask):
    """Accuracy of the predicted class; ``agg_metrics`` is the accuracy."""

    def __init__(self, report_loss: bool = False) -> None:
        self.report_loss = report_loss

    def valid_step(self, model: nn.Module, batch: dict) -> list[dict]:
        logits = model.logits(batch["x"])
        preds = logits.argmax(dim=1).tolist()
        losses = nn.functional.cross_entropy(logits, batch["label"], reduction="none").tolist()
        return [
            {"id": i, "pred": p, "label": int(l), "loss": loss}
            for i, p, l, loss in zip(batch["id"], preds, batch["label"], losses)
        ]

    def evaluate(self, results, split, dataset, output_dir) -> dict[str, float]:
        acc = sum(r["pred"] == r["label"] for r in results) / len(results)
        metrics = {"accuracy": acc, "agg_metrics": acc, "num_results": float(len(results))}
        if self.report_loss:
            metrics["loss"] = sum(r["loss"] for r in results) / len(results)
        return metrics
