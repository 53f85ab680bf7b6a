"""Frames -> CLIP pixel tensors without cutting half of a wide frame away.

CLIP's own processor resizes the short side and centre-crops, which keeps only the middle 56%
of a 16:9 dashcam frame, where the relevant car is often not. ``pad`` (default) letterboxes the
whole frame into the square; ``tile`` covers it with overlapping squares whose embeddings are
averaged; ``center_crop`` is CLIP's behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import torch

from lavis.datasets.video import resize_frames

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ImageMode = Literal["pad", "tile", "center_crop"]
IMAGE_MODES = ("pad", "tile", "center_crop")


def features(output: torch.Tensor | object) -> torch.Tensor:
    """``get_text_features`` / ``get_image_features`` return a tensor before transformers 5 and an
    output object with the projected ``pooler_output`` from 5 on."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output  # type: ignore[attr-defined]


def square_views(frame: np.ndarray, size: int, mode: ImageMode) -> list[np.ndarray]:
    """The ``size`` x ``size`` views of one ``(H, W, 3)`` uint8 frame that the model embeds."""
    if mode == "pad":
        return [resize_frames(frame[None], size, "pad")[0]]
    if mode == "center_crop":
        return [resize_frames(frame[None], size, "shorter")[0]]
    if mode != "tile":
        raise ValueError(f"image_mode must be one of {', '.join(IMAGE_MODES)}, got {mode!r}")
    h, w = frame.shape[:2]
    short, long = min(h, w), max(h, w)
    count = math.ceil(long / short - 1e-6)
    offsets = np.linspace(0, long - short, count).round().astype(int) if count > 1 else [0]
    views = []
    for offset in offsets:
        crop = frame[:, offset : offset + short] if w >= h else frame[offset : offset + short, :]
        interp = cv2.INTER_AREA if short > size else cv2.INTER_LINEAR
        views.append(cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interp))
    return views


class FrameProcessor:
    """RGB uint8 frames of any size -> normalised pixels and, per view, the frame it came from."""

    def __init__(self, image_size: int, mode: ImageMode = "pad", mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD) -> None:
        if mode not in IMAGE_MODES:
            raise ValueError(f"image_mode must be one of {', '.join(IMAGE_MODES)}, got {mode!r}")
        self.image_size, self.mode = image_size, mode
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, frames: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(V, 3, S, S)`` float pixels and ``(V,)`` frame index of each view (V >= len(frames))."""
        views, owner = [], []
        for i, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frame {i}: expected (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
            for view in square_views(frame, self.image_size, self.mode):
                views.append(view)
                owner.append(i)
        if not views:
            raise ValueError("no frames given")
        pixels = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).float().div_(255.0)
        return (pixels - self.mean) / self.std, torch.tensor(owner, dtype=torch.long)
