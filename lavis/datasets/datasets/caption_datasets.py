"""Video-caption datasets: one sample per caption for training, one per video for evaluation.

A video that cannot be decoded does not stop the run and does not quietly change a batch: the
sample comes back as ``{"skipped": (video_id, reason)}``, the collater lists it under
``batch["skipped"]`` with its position, and the runner counts and reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lavis.datasets.annotations import coco_ground_truth
from lavis.datasets.video import VideoDecodeError
from lavis.processors.video_processors import VideoProcessor

logger = logging.getLogger(__name__)


def group_references(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Video id -> all its captions, in file order."""
    references: dict[str, list[str]] = {}
    for row in rows:
        references.setdefault(row["image_id"], []).append(row["caption"])
    return references


class VideoCaptionDataset(Dataset):
    """Training: sample ``i`` is caption row ``i`` with its video."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        video_root: str | Path,
        vis_processor: VideoProcessor,
        text_processor: Callable[[str], str],
        references: dict[str, list[str]] | None = None,
    ) -> None:
        self.rows = rows
        # every caption of each video (SCST rewards, evaluation); by default from ``rows``
        self.references = references if references is not None else group_references(rows)
        self.video_root = Path(video_root)
        self.vis_processor = vis_processor
        self.text_processor = text_processor

    def __len__(self) -> int:
        return len(self.rows)

    def load_video(self, row: dict[str, Any]) -> dict[str, Any]:
        path = self.video_root / row["video"]
        try:
            video, clip = self.vis_processor(path)
        except VideoDecodeError as err:
            logger.warning("skipping video %s: %s", row["image_id"], err)
            return {"skipped": (row["image_id"], str(err))}
        return {"video": video, "video_id": row["image_id"], "timestamps": clip.timestamps}

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        sample = self.load_video(row)
        if "video" in sample:
            sample["text_input"] = self.text_processor(row["caption"])
            sample["references"] = self.references[row["image_id"]]
        return sample

    def collater(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack the readable samples; list the unreadable ones under ``skipped`` as
        ``(position in the batch, video_id, reason)`` so results can be put back in order."""
        ok = [s for s in samples if "video" in s]
        batch: dict[str, Any] = {
            "skipped": [(i, *s["skipped"]) for i, s in enumerate(samples) if "skipped" in s]
        }
        if ok:
            batch["video"] = torch.stack([s["video"] for s in ok])
            for key in ok[0]:
                if key != "video":
                    batch[key] = [s[key] for s in ok]
        return batch


class VideoCaptionEvalDataset(VideoCaptionDataset):
    """Evaluation: one sample per video (de-duplicated before any decoding), with references."""

    def __init__(self, rows: list[dict[str, Any]], *args: Any, shuffle_seed: int | None = None, **kwargs: Any) -> None:
        first_rows: dict[str, dict[str, Any]] = {}
        for row in rows:
            first_rows.setdefault(row["image_id"], row)
        self.caption_rows = rows
        super().__init__(list(first_rows.values()), *args, references=group_references(rows), **kwargs)
        # Control experiment: sample i shows the frames of video frames_of[i] (a derangement).
        self.frames_of = list(range(len(self.rows)))
        if shuffle_seed is not None and len(self.rows) > 1:
            shift = 1 + np.random.default_rng(shuffle_seed).integers(len(self.rows) - 1)
            order = np.random.default_rng(shuffle_seed).permutation(len(self.rows))
            self.frames_of = [0] * len(self.rows)
            for k, i in enumerate(order):
                self.frames_of[int(i)] = int(order[(k + shift) % len(order)])

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.load_video(self.rows[self.frames_of[index]])
        sample["video_id"] = self.rows[index]["image_id"]
        if "skipped" in sample:
            sample["skipped"] = (self.rows[index]["image_id"], sample["skipped"][1])
        return sample

    def ground_truth(self) -> dict[str, Any]:
        """COCO-format ground truth built from this split's own rows."""
        return coco_ground_truth(self.caption_rows)
