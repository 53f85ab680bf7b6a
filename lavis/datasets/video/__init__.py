"""One video reader API for training, evaluation, inference and the pipelines.

``open_video(source, backend)`` returns a ``VideoReader`` whose ``get_frames(indices)`` gives
exactly those frames as RGB uint8 with their timestamps; ``read_clip`` opens, samples and
decodes one clip under a timeout. Every failure is a ``VideoDecodeError`` naming the file.
Backends: ``pyav`` (default), ``decord``, ``torchcodec`` (when installed).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import numpy as np

from lavis.datasets.video.base import Frames, VideoInfo, VideoReader, VideoSource, source_name
from lavis.datasets.video.checked_readers import DecordReader, TorchCodecReader
from lavis.datasets.video.errors import VideoDecodeError
from lavis.datasets.video.frame_samplers import FrameSampler, build_frame_sampler
from lavis.datasets.video.pyav_reader import PyAVReader
from lavis.datasets.video.resize import ResizeMode, fit_within, resize_frames

__all__ = [
    "Frames", "FrameSampler", "VideoDecodeError", "VideoInfo", "VideoReader", "available_backends",
    "build_frame_sampler", "fit_within", "open_video", "read_clip", "resize_frames",
]

BACKENDS: dict[str, tuple[type[VideoReader], str]] = {
    "pyav": (PyAVReader, "av"),
    "decord": (DecordReader, "decord"),
    "torchcodec": (TorchCodecReader, "torchcodec.decoders"),
}
T = TypeVar("T")


@cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except (ImportError, OSError, RuntimeError):  # torchcodec raises on missing FFmpeg libraries
        return False
    return True


def available_backends() -> list[str]:
    return [name for name, (_, module) in BACKENDS.items() if _importable(module)]


def open_video(
    source: VideoSource,
    backend: str = "pyav",
    *,
    size: int | None = None,
    resize_mode: ResizeMode = "shorter",
    threads: int = 1,
    name: str | None = None,
) -> VideoReader:
    """Open one video; ``size`` makes every frame ``size x size`` (see ``resize.py``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    reader_cls, module = BACKENDS[backend]
    if not _importable(module):
        raise ValueError(
            f"video backend {backend!r} is not usable here (cannot import {module}); "
            f"installed backends: {', '.join(available_backends())}"
        )
    return reader_cls(source, size=size, resize_mode=resize_mode, threads=threads, name=name)


def read_clip(
    source: VideoSource,
    sampler: FrameSampler,
    num_frames: int,
    *,
    rng: np.random.Generator | None = None,
    backend: str = "pyav",
    size: int | None = None,
    resize_mode: ResizeMode = "shorter",
    timeout: float | None = 60.0,
    name: str | None = None,
) -> Frames:
    """Open a video, pick ``num_frames`` indices with ``sampler`` and decode them."""
    name = name or source_name(source)

    def work() -> Frames:
        with open_video(source, backend, size=size, resize_mode=resize_mode, name=name) as reader:
            return reader.get_frames(sampler(reader.info, num_frames, rng))

    return call_with_timeout(work, timeout, name)


def call_with_timeout(fn: Callable[[], T], timeout: float | None, name: str) -> T:
    """Run ``fn`` in a helper thread; a decoder that hangs past ``timeout`` s is abandoned.

    The hung thread cannot be killed, only left behind (it is a daemon, so it never blocks exit);
    the caller gets a ``VideoDecodeError`` and moves on to the next video.
    """
    if timeout is None:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # re-raised in the caller's thread below
            box["error"] = err

    thread = threading.Thread(target=target, name=f"decode {name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise VideoDecodeError(name, f"decoding took longer than {timeout:g} s (hung decoder?)")
    if "error" in box:
        raise box["error"]
    return box["value"]
