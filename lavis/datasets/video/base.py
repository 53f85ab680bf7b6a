"""What every video reader returns, whatever its backend."""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import BinaryIO, Union

import numpy as np

from lavis.datasets.video.errors import VideoDecodeError

VideoSource = Union[str, os.PathLike, bytes, BinaryIO]


def source_name(source: VideoSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return str(getattr(source, "name", "<file object>"))


@dataclass(frozen=True)
class VideoInfo:
    """Timing read from the stream itself (not from header counts)."""

    num_frames: int
    fps: float  # average over the whole video (frames / duration)
    duration: float  # seconds, from the first frame's start to the last frame's end
    width: int
    height: int
    timestamps: tuple[float, ...]  # presentation time of every frame, seconds from the first

    def index_at(self, seconds: float) -> int:
        """The frame shown at ``seconds`` (clamped to the video)."""
        i = bisect.bisect_right(self.timestamps, seconds + 1e-6) - 1
        return min(max(i, 0), self.num_frames - 1)


@dataclass
class Frames:
    frames: np.ndarray  # (T, H, W, 3) uint8, RGB
    indices: list[int]
    timestamps: list[float]  # seconds from the first frame


class VideoReader:
    """Opened on one video; ``get_frames`` returns exactly the frames asked for, in that order."""

    name: str
    info: VideoInfo

    def get_frames(self, indices: list[int]) -> Frames:
        raise NotImplementedError

    def get_frames_at(self, seconds: list[float]) -> Frames:
        return self.get_frames([self.info.index_at(t) for t in seconds])

    def check_indices(self, indices: list[int]) -> list[int]:
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("no frame indices requested")
        bad = [i for i in indices if not 0 <= i < self.info.num_frames]
        if bad:
            raise VideoDecodeError(
                self.name, f"frame indices {bad[:5]} are outside the video's {self.info.num_frames} frames"
            )
        return indices

    def close(self) -> None:
        pass

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
