"""Benchmark videos: H.264 (libx264, yuv420p) at realistic sizes, lengths and keyframe spacing.

Decoding cost depends on what the encoder had to do, so the content moves: a textured
background pans (every block changes, as with a moving camera) while shapes cross it, and the
encoder writes real P- and B-frames. Keyframes are forced exactly every ``gop`` frames (no scene
cuts), and the file is checked for that after writing. Files are cached by name in a folder:
a rerun reuses them (a 60 s 720p video takes minutes to write on 2 cores).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

logger = logging.getLogger(__name__)

X264_PRESET = "veryfast"  # 3 B-frames, as most web video has; fast enough to write 60 s of 720p
X264_CRF = "23"  # x264's default quality


@dataclass(frozen=True)
class VideoSpec:
    width: int
    height: int
    seconds: int
    gop: int  # frames from one keyframe to the next
    fps: int = 30

    @property
    def name(self) -> str:
        return f"{self.width}x{self.height}_{self.seconds}s_gop{self.gop}"

    @property
    def num_frames(self) -> int:
        return self.seconds * self.fps


FULL_VIDEOS = [
    VideoSpec(w, h, seconds, gop)
    for w, h in ((640, 360), (1280, 720))
    for seconds in (10, 60)
    for gop in (30, 250)
]
TINY_VIDEOS = [VideoSpec(64, 64, 1, 10)]


def ensure_video(spec: VideoSpec, folder: Path, seed: int = 0) -> Path:
    """The cached video for ``spec`` in ``folder``, written (and checked) when missing; another
    ``seed`` gives other content (colours, texture, motion) of the same kind."""
    path = folder / (f"{spec.name}.mp4" if seed == 0 else f"{spec.name}_seed{seed}.mp4")
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    logger.info("writing %s (%d frames; cached for later runs)", path, spec.num_frames)
    try:
        write_video(spec, tmp, seed)
        check_keyframes(tmp, spec)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_video(spec: VideoSpec, path: Path, seed: int = 0) -> None:
    options = {
        "preset": X264_PRESET, "crf": X264_CRF, "g": str(spec.gop), "keyint_min": str(spec.gop),
        # no extra keyframes at "scene cuts": the spacing is exactly what was asked for
        "x264-params": f"scenecut=0:keyint={spec.gop}:min-keyint={spec.gop}",
    }
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=spec.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.codec_context.gop_size = spec.gop
        stream.codec_context.time_base = Fraction(1, spec.fps)
        frames = render(spec, seed)
        if spec.num_frames >= 300:
            frames = tqdm(frames, total=spec.num_frames, desc=f"encode {spec.name}", unit="frame")
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def render(spec: VideoSpec, seed: int = 0) -> Iterator[np.ndarray]:
    """RGB frames: a panning window over a smooth textured canvas, with moving shapes on top."""
    rng = np.random.default_rng(seed)
    w, h = spec.width, spec.height
    margin = max(w, h) // 4
    canvas = _canvas(w + 2 * margin, h + 2 * margin, rng)
    n_shapes = 6
    pos = rng.uniform([0, 0], [w, h], size=(n_shapes, 2))
    vel = rng.uniform(-1, 1, size=(n_shapes, 2)) * max(w, h) / 90  # about a frame width in 3 s
    colours = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(n_shapes)]
    radii = rng.uniform(0.04, 0.12, n_shapes) * min(w, h)
    for i in range(spec.num_frames):
        t = i / spec.fps
        dx = int(margin * (1 + np.sin(0.7 * t)))  # the camera pans and tilts smoothly
        dy = int(margin * (1 + np.sin(0.5 * t + 1.0)))
        frame = np.ascontiguousarray(canvas[dy : dy + h, dx : dx + w])
        pos += vel
        for k in range(2):  # bounce off the edges
            out = (pos[:, k] < 0) | (pos[:, k] > (w, h)[k])
            vel[out, k] *= -1
        for k in range(n_shapes):
            centre, r = (int(pos[k, 0]), int(pos[k, 1])), max(1, int(radii[k]))
            if k % 2:
                cv2.circle(frame, centre, r, colours[k], -1)
            else:
                cv2.rectangle(frame, (centre[0] - r, centre[1] - r), (centre[0] + r, centre[1] + r), colours[k], -1)
        yield frame


def _canvas(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Colour gradients plus soft blobs and light grain: detail the encoder must track."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height
    channels = []
    for c in range(3):
        fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 2 * np.pi)
        channels.append(0.5 + 0.25 * np.sin(2 * np.pi * (fx * x + phase)) * np.cos(2 * np.pi * fy * y) + 0.2 * (x - y))
    img = np.stack(channels, -1) * 255
    img += rng.normal(0, 6, img.shape[:2])[..., None]  # grain shared by the channels
    return np.clip(img, 0, 255).astype(np.uint8)


def keyframe_indices(path: Path) -> list[int]:
    """Presentation-order indices of the keyframes, from the packets alone (like ffprobe)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None and p.size]
    order = sorted(pts for pts, _ in packets)
    keys = {pts for pts, key in packets if key}
    return [i for i, pts in enumerate(order) if pts in keys]


def check_keyframes(path: Path, spec: VideoSpec) -> list[int]:
    """Raise unless there are ``num_frames`` frames with a keyframe exactly every ``gop``."""
    keys = keyframe_indices(path)
    with av.open(str(path)) as container:
        frames = sum(1 for p in container.demux(video=0) if p.pts is not None and p.size)
    expected = list(range(0, spec.num_frames, spec.gop))
    if frames != spec.num_frames or keys != expected:
        raise RuntimeError(
            f"{path}: {frames} frames with keyframes at {keys[:6]}..., expected {spec.num_frames} frames "
            f"with keyframes every {spec.gop} ({expected[:6]}...)"
        )
    return keys
