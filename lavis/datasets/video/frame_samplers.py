"""Registered frame samplers: which frame indices of a video a clip is made of.

A sampler is called as ``sampler(info, num_frames, rng) -> indices`` (sorted, may repeat when the
video has fewer frames than asked for). Random samplers draw from ``rng``, or from the global
NumPy state when none is given (which the training data pipeline seeds per sample).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lavis.common.registry import registry
from lavis.datasets.video.base import VideoInfo


class FrameSampler:
    random = False

    def __call__(self, info: VideoInfo, num_frames: int, rng: np.random.Generator | None = None) -> list[int]:
        raise NotImplementedError


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(np.random.randint(0, 2**31 - 1))


@registry.register_frame_sampler("uniform")
class UniformSampler(FrameSampler):
    """The middle frame of each of N equal segments (deterministic; for evaluation)."""

    def __call__(self, info, num_frames, rng=None):
        total = info.num_frames
        return [min(int((i + 0.5) * total / num_frames), total - 1) for i in range(num_frames)]


@registry.register_frame_sampler("headtail")
class HeadTailSampler(FrameSampler):
    """Random frames, half from the first half of the video and half from the second (training)."""

    random = True

    def __call__(self, info, num_frames, rng=None):
        rng, total = _rng(rng), info.num_frames
        mid = max(total // 2, 1)
        halves = [(0, mid, num_frames // 2), (min(mid, total - 1), total, num_frames - num_frames // 2)]
        picks: list[int] = []
        for lo, hi, count in halves:
            span = max(hi - lo, 1)
            picks += (lo + rng.choice(span, size=count, replace=span < count)).tolist()
        return sorted(picks)


@registry.register_frame_sampler("random_segment")
class RandomSegmentSampler(FrameSampler):
    """One random frame from each of N equal segments (training; TSN-style)."""

    random = True

    def __call__(self, info, num_frames, rng=None):
        rng, total = _rng(rng), info.num_frames
        picks = []
        for i in range(num_frames):
            lo = min(int(i * total / num_frames), total - 1)
            hi = max(int((i + 1) * total / num_frames), lo + 1)
            picks.append(int(rng.integers(lo, hi)))
        return picks


@registry.register_frame_sampler("fps")
class FpsSampler(FrameSampler):
    """Every frame at ``target_fps`` (frame selection); ``num_frames`` caps the count if > 0."""

    def __init__(self, target_fps: float = 1.0) -> None:
        if target_fps <= 0:
            raise ValueError(f"target_fps must be positive, got {target_fps}")
        self.target_fps = target_fps

    def __call__(self, info, num_frames, rng=None):
        times = np.arange(0.0, info.duration, 1.0 / self.target_fps)
        picks = sorted({info.index_at(float(t)) for t in times})
        if num_frames and len(picks) > num_frames:
            keep = np.linspace(0, len(picks) - 1, num_frames).round().astype(int)
            picks = [picks[k] for k in keep]
        return picks


def build_frame_sampler(spec: str | dict[str, Any]) -> FrameSampler:
    """``"uniform"`` or ``{"name": "fps", "target_fps": 2}`` -> a sampler instance."""
    if isinstance(spec, str):
        return registry.get("frame_sampler", spec)()
    kwargs = dict(spec)
    return registry.get("frame_sampler", kwargs.pop("name"))(**kwargs)
