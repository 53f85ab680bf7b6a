"""Test videos written with PyAV whose every frame carries its own index, readable back.

Frame ``i`` shows the bits of ``i`` as black/white stripes (top half: bits 0-7, middle: bits
8-15) above a pure red band, so a test can tell which frame a reader returned, and that its
colours are RGB, after compression and resizing.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

RED = (255, 0, 0)


def index_frame(i: int, width: int, height: int) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    band = height * 2 // 5
    for b in range(8):
        cols = slice(b * width // 8, (b + 1) * width // 8)
        if (i >> b) & 1:
            img[:band, cols] = 255
        if (i >> (b + 8)) & 1:
            img[band : 2 * band, cols] = 255
    img[2 * band :] = RED
    return img


def read_index(img: np.ndarray) -> int:
    height, width = img.shape[:2]
    band = height * 2 // 5
    value = 0
    for b in range(8):
        lo, hi = b * width // 8, (b + 1) * width // 8
        cols = slice(lo + (hi - lo) // 4, hi - (hi - lo) // 4 or hi)
        top = img[band // 4 : band * 3 // 4, cols].mean()
        mid = img[band + band // 4 : band + band * 3 // 4, cols].mean()
        value |= (top > 127) << b
        value |= (mid > 127) << (b + 8)
    return value


def write_video(
    path: Path,
    num_frames: int = 30,
    fps: float = 10,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    container_format: str | None = None,
    options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
    frame_times: list[float] | None = None,
    audio: bool = False,
    faststart: bool = False,
    rotation: int = 0,
) -> Path:
    """Encode ``num_frames`` index frames; ``frame_times`` (seconds) makes the rate variable;
    ``rotation`` writes a display matrix telling players to turn the picture counter-clockwise."""
    width, height = size
    rate = Fraction(fps).limit_denominator(1001)
    muxer_options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=container_format, options=muxer_options) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"threads": "1", **(options or {})}
        if rotation:
            stream.set_display_rotation(rotation)
        if frame_times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        audio_stream = out.add_stream("aac", rate=16000) if audio else None
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_frame(i, width, height), format="rgb24")
            if frame_times is not None:
                frame.pts, frame.time_base = round(frame_times[i] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio_stream is not None:
            _write_tone(out, audio_stream, seconds=num_frames / fps)
    return path


def _write_tone(out, stream, seconds: float) -> None:
    rate = stream.rate
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate = rate
    for packet in stream.encode(frame):
        out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w") as out:
        _write_tone(out, out.add_stream("aac", rate=16000), seconds)
    return path


def cut_by_stream_copy(src: Path, dst: Path, start_frame: int) -> int:
    """Like ``ffmpeg -ss T -c copy``: copy packets from the keyframe before ``start_frame``,
    shifted so ``start_frame`` is at time 0. The mp4 muxer then writes an edit list that hides
    the leading frames. Returns the source frame index of the cut's first keyframe."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        frame_ticks = int(round(1 / (stream.average_rate * stream.time_base)))
        target = start_frame * frame_ticks
        packets = [p for p in inp.demux(stream) if p.dts is not None]
        keys = [p for p in packets if p.is_keyframe and p.pts <= target]
        first = packets.index(keys[-1])
        first_key_frame = keys[-1].pts // frame_ticks
        copy = out.add_stream_from_template(stream)
        for packet in packets[first:]:
            packet.pts -= target
            packet.dts -= target
            packet.stream = copy
            out.mux(packet)
        return first_key_frame


def truncate(src: Path, dst: Path, keep: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst
