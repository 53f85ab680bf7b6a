"""The ``frame_selection`` task: train a frame selector on mined frames, score it with ``sim_m``.

Evaluation, per question (each on exactly one rank): the model scores the video's candidate
frames and keeps the best of each of ``segments`` parts of the timeline (``k`` frames); the
embedder (DINOv2 by default) embeds candidates and true frames once, and the sample records the
selector's, uniform choice's and the oracle's best similarities. Rank 0 turns the gathered
records into ``sim_m`` / ``uniform_sim_m`` / ``oracle_sim_m`` and ``hit@tol`` (``metrics/sim_m.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from lavis.common.config import Config
from lavis.common.registry import registry
from lavis.metrics.sim_m import best_similarity, coverable, summarize
from lavis.models.clip_frame_selector.select import best_per_segment, uniform_choice
from lavis.models.image_embedders import ImageEmbedder, build_embedder
from lavis.tasks.base_task import BaseTask

logger = logging.getLogger(__name__)
DEFAULT_THRESHOLDS = [0.95, 0.96, 0.97, 0.98, 0.99]


@registry.register_task("frame_selection")
class FrameSelectionTask(BaseTask):
    def __init__(
        self,
        k: int = 4,
        segments: int | None = None,
        thresholds: list[float] | None = None,
        tolerance: float = 1.0,
        embedder: dict[str, Any] | None = None,
        agg_metric: str = "sim_0.95",
    ) -> None:
        """``embedder``: how ``sim_m`` compares frames, ``{"name": "dinov2", "path": ...}`` by
        default (``pixels`` needs no weights); ``tolerance``: seconds, for ``hit@tol``."""
        self.k, self.segments, self.tolerance = k, segments, tolerance
        self.thresholds = list(thresholds or DEFAULT_THRESHOLDS)
        self.embedder_spec = dict(embedder or {"name": "dinov2", "path": None})
        if self.embedder_spec.get("name") in ("dinov2", "clip"):
            self.embedder_spec.setdefault("device", "cpu")  # built on the CPU, moved to each rank's device
        self.agg_metric = agg_metric
        self._embedder: ImageEmbedder | None = None

    def check_ready(self, cfg: Config) -> None:
        """Load the embedder now: missing DINOv2 weights fail before any training."""
        if cfg.run.valid_splits or cfg.run.test_splits:
            self.embedder()

    def embedder(self, device: torch.device | None = None) -> ImageEmbedder:
        """Built once (on the CPU), then moved to the device of the model it scores."""
        if self._embedder is None:
            self._embedder = build_embedder(self.embedder_spec)
        if device is not None:
            self._embedder.to(device)
        return self._embedder

    @torch.no_grad()
    def valid_step(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        skipped = {pos: (sid, reason) for pos, sid, reason in batch.get("skipped", [])}
        scored = iter(self._score_one(model, batch, i) for i in range(len(batch.get("id", []))))
        results = []
        for pos in range(len(batch.get("id", [])) + len(skipped)):
            if pos in skipped:
                results.append({"id": skipped[pos][0], "error": skipped[pos][1]})
            else:
                results.append(next(scored))
        return results

    def _score_one(self, model: nn.Module, batch: dict[str, Any], i: int) -> dict[str, Any]:
        candidates, times, duration = batch["candidates"][i], batch["candidate_times"][i], batch["duration"][i]
        scores = model.score(batch["text_input"][i], candidates).tolist()
        chosen = best_per_segment(scores, times, duration, self.k, self.segments)
        uniform = uniform_choice(times, duration, self.k)
        result: dict[str, Any] = {
            "id": batch["id"][i],
            "selected_times": [times[j] for j in chosen],
            "selected_scores": [scores[j] for j in chosen],
            "uniform_times": [times[j] for j in uniform],
            "true_times": batch["true_times"][i],
        }
        true_frames = batch["true_frames"][i]
        if true_frames:
            embeddings = self.embedder(model.device)(list(true_frames) + list(candidates))
            sims = embeddings[: len(true_frames)] @ embeddings[len(true_frames) :].T
            result["selector_similarity"] = best_similarity(sims, chosen)
            result["uniform_similarity"] = best_similarity(sims, uniform)
            result["oracle"] = {f"{m:.2f}": coverable(sims >= m, self.k) for m in self.thresholds}
        return result

    def evaluate(self, results: list[dict[str, Any]], split: str, dataset: Dataset, output_dir: Path) -> dict[str, float]:
        errors = sum("error" in r for r in results)
        if errors:
            logger.warning("%s: %d of %d videos could not be read and are not scored", split, errors, len(results))
        metrics = summarize([r for r in results if "error" not in r], self.thresholds, self.tolerance)
        if not metrics["num_samples"]:
            raise ValueError(f"no question of {split} could be scored (unreadable videos or no support_frames)")
        if self.agg_metric not in metrics:
            raise KeyError(f"run.agg_metric={self.agg_metric!r} is not a frame-selection metric ({', '.join(metrics)})")
        return {**metrics, "agg_metrics": metrics[self.agg_metric], "num_skipped": float(errors)}
