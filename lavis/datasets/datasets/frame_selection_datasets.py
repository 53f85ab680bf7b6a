"""Frame-selection datasets: mined frames for training, whole videos for evaluation.

Training sample: a question's text with its true frames (``frames_true``) and mined negatives
(``frames_neg``), as written by ``scripts/frame_selection/in_video_negative_mining.py``.
Evaluation sample: the text, the video's candidate frames (at ``fps_target``, shrunk to
``max_side``) and its true frames decoded at the ``support_frames`` times. Frames stay RGB uint8
of any size; the model does its own pixel processing (the same in training and prediction).
Anything unreadable comes back as ``{"skipped": (id, reason)}`` and is counted by the runner.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from lavis.datasets.qa_frames import QASample, caption_text, resolve_video
from lavis.datasets.video import VideoDecodeError, call_with_timeout, fit_within, open_video
from lavis.models.clip_frame_selector.select import read_candidates

logger = logging.getLogger(__name__)


def read_png(path: Path, max_side: int) -> np.ndarray:
    with Image.open(path) as image:
        return fit_within(np.asarray(image.convert("RGB")), max_side)


def collate_lists(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Readable samples' fields as lists; unreadable ones as ``skipped`` (position, id, reason)."""
    ok = [s for s in samples if "skipped" not in s]
    batch: dict[str, Any] = {"skipped": [(i, *s["skipped"]) for i, s in enumerate(samples) if "skipped" in s]}
    for key in ok[0] if ok else ():
        batch[key] = [s[key] for s in ok]
    return batch


class MinedFramesDataset(Dataset):
    """Training: one sample per mined question (its positives and negatives)."""

    def __init__(self, samples: list[QASample], records: dict[str, dict[str, Any]], mined_root: str | Path,
                 caption_setting: int, max_side: int = 448, max_negatives: int | None = None) -> None:
        self.mined_root = Path(mined_root)
        self.samples = [s for s in samples if records.get(s.id, {}).get("positives")]
        self.records, self.caption_setting = records, caption_setting
        self.max_side, self.max_negatives = max_side, max_negatives
        unmined = len(samples) - len(self.samples)
        if unmined:
            logger.warning("%d of %d training questions have no mined true frames and are left out", unmined, len(samples))
        if not self.samples:
            raise ValueError(f"no mined training samples under {self.mined_root}; run in_video_negative_mining.py first")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        record = self.records[sample.id]
        negatives = record.get("negatives", [])[: self.max_negatives]
        try:
            positives = [read_png(self.mined_root / p["file"], self.max_side) for p in record["positives"]]
            negatives_px = [read_png(self.mined_root / n["file"], self.max_side) for n in negatives]
        except (OSError, UnidentifiedImageError) as err:
            logger.warning("skipping %s: %s", sample.id, err)
            return {"skipped": (sample.id, f"unreadable mined frame: {err}")}
        return {"id": sample.id, "text_input": caption_text(sample, self.caption_setting),
                "positives": positives, "negatives": negatives_px}

    @staticmethod
    def collater(samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Every frame of the batch in one list, with the caption it belongs to and its label."""
        batch = collate_lists(samples)
        frames, owner, label = [], [], []
        for c, (pos, neg) in enumerate(zip(batch.pop("positives", []), batch.pop("negatives", []))):
            frames += pos + neg
            owner += [c] * (len(pos) + len(neg))
            label += [1.0] * len(pos) + [0.0] * len(neg)
        if frames:
            batch.update(frames=frames, owner=torch.tensor(owner), label=torch.tensor(label))
        return batch


class VideoCandidatesDataset(Dataset):
    """Evaluation: one sample per question, with its video's candidate frames and true frames."""

    def __init__(self, samples: list[QASample], video_root: str | Path, caption_setting: int,
                 fps_target: float = 2.0, max_side: int = 448, timeout: float = 120.0) -> None:
        self.samples, self.video_root = samples, Path(video_root)
        self.caption_setting, self.fps_target = caption_setting, fps_target
        self.max_side, self.timeout = max_side, timeout

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        path = resolve_video(self.video_root, sample.video_path)
        try:
            return call_with_timeout(lambda: self._read(sample, path), self.timeout, str(path))
        except VideoDecodeError as err:
            logger.warning("skipping %s: %s", sample.id, err)
            return {"skipped": (sample.id, str(err))}

    def _read(self, sample: QASample, path: Path) -> dict[str, Any]:
        with open_video(path) as reader:
            indices, candidates = read_candidates(reader, self.fps_target, self.max_side)
            info = reader.info
            true = reader.get_frames_at(list(sample.support_frames)) if sample.support_frames else None
        return {
            "id": sample.id,
            "text_input": caption_text(sample, self.caption_setting),
            "candidates": candidates,
            "candidate_times": [info.timestamps[i] for i in indices],
            "true_frames": [fit_within(f, self.max_side) for f in true.frames] if true else [],
            "true_times": list(sample.support_frames),
            "duration": info.duration,
        }

    collater = staticmethod(collate_lists)
