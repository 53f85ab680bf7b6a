"""A folder of videos as a Dataset whose items never raise: a bad file becomes an error item.

Decoding runs in DataLoader workers, ahead of the model, one video per worker task; the model's
batches are put together in the main process (``video_loader`` + ``batched``). Every video is
decoded to the same number of frames at the same size, so a batch is a plain stack and a video's
caption does not depend on which videos share its batch.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from lavis.common.lifetime import dataloader_worker_init
from lavis.datasets.video import Frames, VideoDecodeError
from lavis.processors.video_processors import VideoProcessor


def frames_used(clip: Frames) -> dict[str, list]:
    """Which frames a caption was made from, for the output records."""
    return {"frame_indices": list(clip.indices), "frame_timestamps": [round(t, 4) for t in clip.timestamps]}


def list_videos(root: str | Path, extensions: str) -> list[str]:
    """Relative POSIX paths of the files under ``root`` whose extension is in the comma list
    ``extensions`` (case-insensitive), sorted; hidden files and folders are left out."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--video_dir {root} is not a folder")
    wanted = {"." + ext.strip().lstrip(".").lower() for ext in extensions.split(",") if ext.strip()}
    if not wanted:
        raise ValueError(f"--video_ext {extensions!r} names no extension")
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.suffix.lower() in wanted and path.is_file() and not any(p.startswith(".") for p in relative.parts):
            found.append(relative.as_posix())
    return sorted(found)


class VideoFolder(Dataset):
    """Items: ``{"video", "pixels", "frames"}`` (``frames_used``) or ``{"video", "error"}``."""

    def __init__(self, root: str | Path, names: list[str], processor: VideoProcessor) -> None:
        self.root, self.names, self.processor = Path(root), names, processor

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.names[index]
        try:
            pixels, clip = self.processor(str(self.root / name))
        except (VideoDecodeError, OSError, ValueError) as err:  # one bad file never stops the job
            return {"video": name, "error": f"{type(err).__name__}: {err}"}
        return {"video": name, "pixels": pixels, "frames": frames_used(clip)}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Split decoded videos (stacked into ``pixels``) from failed ones."""
    decoded = [item for item in items if "error" not in item]
    return {
        "pixels": torch.stack([item.pop("pixels") for item in decoded]) if decoded else None,
        "decoded": decoded,
        "failed": [item for item in items if "error" in item],
    }


def video_loader(folder: VideoFolder, batch_size: int, workers: int, persistent: bool = False) -> DataLoader:
    """Decoded videos one by one, from ``workers`` processes (0: in this one), in order.

    One video per worker task, not one batch: every worker stays busy whatever the batch size
    (a worker per batch leaves workers idle when batches are fewer than workers, and the first
    batch waits for one worker to decode all of it). Two model batches are kept in flight.
    ``persistent``: keep the workers between passes (benchmarks). The workers end with this process."""
    ahead = max(2, -(-2 * batch_size // workers)) if workers else None
    return DataLoader(folder, batch_size=None, num_workers=workers, prefetch_factor=ahead,
                      persistent_workers=persistent and workers > 0,
                      worker_init_fn=functools.partial(dataloader_worker_init, os.getpid()))


def batched(items: Iterable[dict[str, Any]], batch_size: int) -> Iterator[dict[str, Any]]:
    """``collate``d batches of ``batch_size`` items (the last one may be smaller)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield collate(batch)
            batch = []
    if batch:
        yield collate(batch)
