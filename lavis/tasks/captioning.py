"""The ``captioning`` task: cross-entropy training, generation and caption metrics.

Evaluation generates one caption per video (each video once, on exactly one rank); the runner
gathers the results in dataset order, and rank 0 scores them with pycocoevalcap's scorers
(``lavis/metrics/caption.py``) against the split's own references. A video the dataset could not
decode yields an error record, is left out of the scores and is counted in ``num_skipped``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from lavis.common.config import Config
from lavis.common.io import atomic_write_json
from lavis.common.registry import registry
from lavis.metrics.caption import METRICS, score_captions
from lavis.metrics.ptb import require_java
from lavis.tasks.base_task import BaseTask

logger = logging.getLogger(__name__)


@registry.register_task("captioning")
class CaptionTask(BaseTask):
    """Cross-entropy training on captions; beam-search captioning and BLEU/METEOR/ROUGE-L/CIDEr."""

    def __init__(
        self,
        num_beams: int = 5,
        max_len: int = 30,
        min_len: int = 8,
        repetition_penalty: float = 1.0,
        length_penalty: float = 1.0,
        use_nucleus_sampling: bool = False,
        top_p: float = 0.9,
        temperature: float = 1.0,
        agg_metric: str = "CIDEr",
        spice: bool = False,
        metric_timeout: float = 600.0,
    ) -> None:
        if agg_metric not in (*METRICS, "SPICE"):
            raise ValueError(f"run.agg_metric={agg_metric!r} is not one of {', '.join(METRICS)}, SPICE")
        self.generation = dict(
            num_beams=num_beams, max_length=max_len, min_length=min_len, repetition_penalty=repetition_penalty,
            length_penalty=length_penalty, use_nucleus_sampling=use_nucleus_sampling, top_p=top_p,
            temperature=temperature,
        )
        self.agg_metric, self.spice, self.metric_timeout = agg_metric, spice, metric_timeout

    def check_ready(self, cfg: Config) -> None:
        """Fail before any training or generation if the metrics could not run."""
        if cfg.run.valid_splits or cfg.run.test_splits:
            require_java()

    def valid_step(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        captions = iter(model.generate(batch, **self.generation) if "video" in batch else [])
        video_ids = iter(batch.get("video_id", []))
        skipped = {pos: (vid, reason) for pos, vid, reason in batch.get("skipped", [])}
        results = []
        for pos in range(len(batch.get("video_id", [])) + len(skipped)):
            if pos in skipped:
                vid, reason = skipped[pos]
                results.append({"video_id": vid, "caption": None, "error": reason})
            else:
                results.append({"video_id": next(video_ids), "caption": next(captions)})
        return results

    def evaluate(
        self, results: list[dict[str, Any]], split: str, dataset: Dataset, output_dir: Path
    ) -> dict[str, float]:
        atomic_write_json(dataset.ground_truth(), Path(output_dir) / "result" / f"{split}_gt.json")
        predictions = {r["video_id"]: r["caption"] for r in results if r.get("caption") is not None}
        skipped = len(results) - len(predictions)
        if skipped:
            logger.warning("%s: %d of %d videos could not be read and are not scored", split, skipped, len(results))
        references = {vid: dataset.references[vid] for vid in predictions}
        metrics = score_captions(references, predictions, spice=self.spice, timeout=self.metric_timeout)
        return {**metrics, "agg_metrics": metrics[self.agg_metric], "num_videos": float(len(predictions)),
                "num_skipped": float(skipped)}
