"""Video processors: a video file in, a normalised ``(T, C, H, W)`` float tensor out.

Decoding (frame sampling, aspect-preserving resize to ``image_size``) is done by the reader;
these classes add the training augmentation (one random resized crop and one horizontal flip
shared by all frames of a clip) and the backbone's normalisation. torch only (no torchvision).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from lavis.common.registry import registry
from lavis.datasets.video import Frames, build_frame_sampler, read_clip
from lavis.datasets.video.base import VideoSource
from lavis.datasets.video.resize import ResizeMode

# Per-backbone pixel statistics (RGB, 0-1 scale).
NORMALIZATION = {
    "eva_clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),  # ViT-g, CLIP
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "kinetics": ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225)),  # TimeSformer (K400)
}


class VideoProcessor:
    """Decode ``n_frms`` frames of a video and turn them into a normalised tensor."""

    default_sampler = "uniform"

    def __init__(
        self,
        image_size: int = 224,
        n_frms: int = 8,
        frame_sampler: str | dict[str, Any] | None = None,
        normalization: Literal["eva_clip", "imagenet", "kinetics"] = "eva_clip",
        backend: str = "pyav",
        resize_mode: ResizeMode = "shorter",
        timeout: float = 60.0,
    ) -> None:
        self.image_size, self.n_frms = image_size, n_frms
        self.sampler = build_frame_sampler(frame_sampler or self.default_sampler)
        mean, std = NORMALIZATION[normalization]
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.backend, self.resize_mode, self.timeout = backend, resize_mode, timeout

    def load(self, source: VideoSource, rng: np.random.Generator | None = None) -> Frames:
        return read_clip(
            source, self.sampler, self.n_frms, rng=rng, backend=self.backend,
            size=self.image_size, resize_mode=self.resize_mode, timeout=self.timeout,
        )

    def transform(self, frames: np.ndarray) -> torch.Tensor:
        """``(T, H, W, 3)`` uint8 -> ``(T, 3, H, W)`` float32, normalised."""
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)
        return (video - self.mean) / self.std

    def __call__(self, source: VideoSource) -> tuple[torch.Tensor, Frames]:
        clip = self.load(source)
        return self.transform(clip.frames), clip


@registry.register_processor("video_eval")
class VideoEvalProcessor(VideoProcessor):
    """Uniform frames, aspect-preserving resize and center crop, normalisation."""


@registry.register_processor("video_train")
class VideoTrainProcessor(VideoProcessor):
    """Head/tail random frames, one random resized crop and flip for the whole clip."""

    default_sampler = "headtail"

    def __init__(self, min_scale: float = 0.5, max_scale: float = 1.0, hflip: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_scale, self.max_scale, self.hflip = min_scale, max_scale, hflip

    def transform(self, frames: np.ndarray) -> torch.Tensor:
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)
        top, left, h, w = random_resized_crop_box(video.shape[-2], video.shape[-1], self.min_scale, self.max_scale)
        video = F.interpolate(
            video[..., top : top + h, left : left + w], size=(self.image_size, self.image_size),
            mode="bilinear", align_corners=False, antialias=True,
        )
        if self.hflip and torch.rand(()) < 0.5:
            video = video.flip(-1)
        return (video - self.mean) / self.std


def random_resized_crop_box(
    height: int, width: int, min_scale: float, max_scale: float, ratio: tuple[float, float] = (3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """A crop (top, left, h, w) covering ``[min_scale, max_scale]`` of the area (torch RNG)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(()).uniform_(min_scale, max_scale))
        aspect = math.exp(float(torch.empty(()).uniform_(*log_ratio)))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, ()))
            left = int(torch.randint(0, width - w + 1, ()))
            return top, left, h, w
    side = min(height, width)  # fall back to the center square
    return (height - side) // 2, (width - side) // 2, side, side
