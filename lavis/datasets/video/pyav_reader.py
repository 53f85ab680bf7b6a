"""The default reader: PyAV, seeking to keyframes and checking every frame it returns.

On open, the container is demuxed once (packets only, nothing decoded) to learn the true
presentation timestamp of every frame: headers' frame counts are not trusted, frames an edit
list discards are left out, B-frame reordering is undone by sorting. A frame is then fetched by
seeking to the nearest keyframe at or before it and decoding forward until the decoder returns
exactly that timestamp. Any surprise (a decoder that lands past the frame, missing timestamps, a
container without an index) switches to one sequential decode of the file.

A packet the demuxer flags corrupt (one cut short where a file was truncated) ends the stream:
it and everything after it are left out of the frame table and never sent to the decoder, so
every frame listed decodes exactly, whatever the FFmpeg build's error concealment would make of
a partial packet.

Frames come out as players show them: a display matrix turning the picture by 90, 180 or 270
degrees (phone videos) is applied, and ``info.width``/``height`` are those of the turned frame.
"""

from __future__ import annotations

import bisect
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from lavis.datasets.video.base import Frames, VideoInfo, VideoReader, VideoSource, source_name
from lavis.datasets.video.errors import VideoDecodeError
from lavis.datasets.video.keyframes import is_idr, nal_length_size
from lavis.datasets.video.resize import ResizeMode, crop_or_pad, scaled_size

logger = logging.getLogger(__name__)


class _Mismatch(Exception):
    """The seek-and-decode path did not produce the exact frame asked for."""


def _open_container(source: VideoSource, name: str) -> av.container.InputContainer:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise VideoDecodeError(name, "file does not exist")
        if path.stat().st_size == 0:
            raise VideoDecodeError(name, "empty file (0 bytes)")
        target: str | BinaryIO = str(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise VideoDecodeError(name, "empty file (0 bytes)")
        target = io.BytesIO(source)
    else:
        source.seek(0)
        target = source
    try:
        return av.open(target, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as err:
        raise VideoDecodeError(name, f"not a readable video container (corrupt or truncated?): {err}") from err


class PyAVReader(VideoReader):
    """Frame-accurate reader over one video (path, bytes or binary file object)."""

    def __init__(
        self,
        source: VideoSource,
        *,
        size: int | None = None,
        resize_mode: ResizeMode = "shorter",
        threads: int = 1,
        name: str | None = None,
    ) -> None:
        self.name = name or source_name(source)
        self._source = source
        self.size, self.resize_mode, self.threads = size, resize_mode, threads
        self._container = self._open()
        self.codec = self._stream.codec_context.name
        self.non_idr_keyframes = 0  # H.264/HEVC keyframes a decoder cannot start at cleanly
        pts, keyframes, self.truncated = self._scan()
        if not pts:
            self.close()
            raise VideoDecodeError(self.name, "no decodable video frames (fewer than 1 frame)")
        self._pts, self._keyframes = pts, keyframes
        self.seekable = self._container.format.name not in ("mpegts", "h264", "hevc")
        self._reopen()  # the scan consumed the container
        self.rotation = self._display_rotation()
        self.info = self._make_info()
        self.frames_decoded = 0  # for tests and benchmarks: decoding work actually done

    # -------------------------------------------------------------- set-up
    def _open(self) -> av.container.InputContainer:
        container = _open_container(self._source, self.name)
        if not container.streams.video:
            container.close()
            raise VideoDecodeError(self.name, "no video stream (audio-only or data file?)")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            container.close()
            raise VideoDecodeError(self.name, "unsupported video codec")
        stream.codec_context.thread_count = self.threads
        # non-reference frames can be skipped exactly when one frame is decoded at a time
        self._skip_nonref = stream.codec_context.name in ("h264", "hevc") and self.threads == 1
        self._stream = stream
        return container

    def _reopen(self) -> None:
        self._container.close()
        self._container = self._open()

    def _scan(self) -> tuple[list[int], list[int], bool]:
        """Presentation timestamps of all frames and of keyframes, from packets alone."""
        pts: set[int] = set()
        keyframes: list[int] = []
        truncated = False
        nal_units = self.codec in ("h264", "hevc")
        length_size = nal_length_size(self.codec, self._stream.codec_context.extradata) if nal_units else None
        try:
            for packet in self._container.demux(self._stream):
                if packet.is_corrupt:
                    truncated = True
                    logger.warning("%s: a packet is cut short or corrupt; using the frames before it", self.name)
                    break
                if packet.size == 0 or packet.is_discard:
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    continue
                pts.add(stamp)
                if packet.is_keyframe:
                    keyframes.append(stamp)
                    if nal_units and not is_idr(bytes(packet), self.codec, length_size):
                        self.non_idr_keyframes += 1
        except av.error.FFmpegError as err:
            truncated = True
            logger.warning("%s: stopped reading packets early (%s); using the frames before it", self.name, err)
        return sorted(pts), sorted(keyframes), truncated

    def _display_rotation(self) -> int:
        """Degrees (0, 90, 180, 270; counter-clockwise) players turn the frames by.

        PyAV exposes the display matrix only on decoded frames, so the first frame is decoded
        (every read seeks or reopens first, so this leaves no trace)."""
        try:
            frame = next(self._container.decode(self._stream), None)
        except av.error.FFmpegError:
            frame = None  # the reads that follow will say what is wrong
        degrees = round(frame.rotation) % 360 if frame is not None else 0
        if degrees % 90:
            logger.warning("%s: display rotation of %d degrees not supported; ignoring it", self.name, degrees)
            return 0
        return degrees

    @property
    def keyframe_indices(self) -> list[int]:
        """Index of every keyframe in presentation order (frames hidden by an edit list left out)."""
        position = {p: i for i, p in enumerate(self._pts)}
        return [position[k] for k in self._keyframes if k in position]

    def _make_info(self) -> VideoInfo:
        tb = float(self._stream.time_base)
        deltas = np.diff(self._pts)
        if len(deltas):
            frame_ticks = float(np.median(deltas))
        else:
            rate = self._stream.average_rate or self._stream.guessed_rate or 25
            frame_ticks = 1.0 / (float(rate) * tb)
        duration = (self._pts[-1] - self._pts[0] + frame_ticks) * tb
        timestamps = tuple((p - self._pts[0]) * tb for p in self._pts)
        width, height = self._stream.codec_context.width, self._stream.codec_context.height
        if self.rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            num_frames=len(self._pts),
            fps=len(self._pts) / duration if duration > 0 else 0.0,
            duration=duration,
            width=width,
            height=height,
            timestamps=timestamps,
        )

    # -------------------------------------------------------------- reading
    def get_frames(self, indices: list[int]) -> Frames:
        indices = self.check_indices(indices)
        wanted = sorted(set(indices))
        got: dict[int, np.ndarray] | None = None
        if self.seekable and self._keyframes:
            try:
                got = self._seek_and_decode(wanted)
            except (_Mismatch, av.error.FFmpegError) as err:
                logger.debug("%s: seeking gave a wrong frame (%s); decoding sequentially", self.name, err)
                self._reopen()
        if got is None:
            got = self._decode_sequentially(wanted)
        return Frames(
            frames=np.stack([got[i] for i in indices]),
            indices=indices,
            timestamps=[self.info.timestamps[i] for i in indices],
        )

    def _seek_and_decode(self, wanted: list[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        frames = None
        position: int | None = None  # pts of the last frame decoded
        targets = {self._pts[i] for i in wanted}
        for i in wanted:
            target = self._pts[i]
            k = bisect.bisect_right(self._keyframes, target) - 1
            keyframe = self._keyframes[k] if k >= 0 else self._pts[0]
            if frames is None or position is None or keyframe > position:
                self._container.seek(keyframe, stream=self._stream, backward=True, any_frame=False)
                frames = self._decode_towards(targets)
            for frame in frames:
                self.frames_decoded += 1
                if frame.pts is None:
                    raise _Mismatch("decoder returned a frame without a timestamp")
                position = frame.pts
                if frame.pts == target:
                    out[i] = self._to_rgb(frame)
                    break
                if frame.pts > target:
                    raise _Mismatch(f"asked for pts {target}, decoder jumped to {frame.pts}")
            else:
                raise _Mismatch(f"stream ended before pts {target}")
        return out

    def _decode_towards(self, targets: set[int] | None) -> Iterator[av.VideoFrame]:
        """Decode from the current position (every frame when ``targets`` is None). With H.264
        and HEVC, a frame no other frame refers to is skipped unless it is a target: the frames a
        target needs are all decoded, so what it decodes to is unchanged (the pts checks of the
        caller would catch anything else). Skipping is set per packet, before the decoder sees
        it; there is no frame threading (``threads`` = 1) that could apply it to another packet.
        A corrupt packet ends the stream: the decoder is flushed instead of being sent it."""
        context = self._stream.codec_context
        skipping = self._skip_nonref and targets is not None
        for packet in self._container.demux(self._stream):
            if packet.is_corrupt:
                break
            if skipping:
                stamp = packet.pts
                context.skip_frame = "DEFAULT" if stamp is None or stamp in targets else "NONREF"
            yield from packet.decode()
            if packet.size == 0:  # demux's flush packet: the decoder has given all it holds
                return
        context.skip_frame = "DEFAULT"
        yield from context.decode(None)

    def _decode_sequentially(self, wanted: list[int]) -> dict[int, np.ndarray]:
        self._reopen()
        by_pts = {self._pts[i]: i for i in wanted}
        out: dict[int, np.ndarray] = {}
        try:
            for n, frame in enumerate(self._decode_towards(None)):
                self.frames_decoded += 1
                i = by_pts.get(frame.pts) if frame.pts is not None else (n if n in wanted else None)
                if i is not None and i not in out:
                    out[i] = self._to_rgb(frame)
                    if len(out) == len(wanted):
                        break
        except av.error.FFmpegError as err:
            logger.warning("%s: decoding stopped early: %s", self.name, err)
        missing = [i for i in wanted if i not in out]
        if missing:
            raise VideoDecodeError(
                self.name,
                f"frames {missing[:5]} of {self.info.num_frames} could not be decoded (truncated or corrupt)",
            )
        return out

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """RGB, turned as players show it, then scaled and cropped or padded (after turning,
        so the crop is centred on the picture as shown)."""
        turns = self.rotation // 90
        if self.size is None:
            return _turn(frame.to_ndarray(format="rgb24"), turns)
        w, h = scaled_size(self.info.width, self.info.height, self.size, self.resize_mode)
        if turns % 2:
            w, h = h, w  # scale the stored picture to what becomes (w, h) once turned
        scaled = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
        return crop_or_pad(_turn(scaled, turns), self.size, self.resize_mode)

    def close(self) -> None:
        self._container.close()


def _turn(image: np.ndarray, quarter_turns: int) -> np.ndarray:
    """Rotate ``(H, W, C)`` counter-clockwise by ``quarter_turns`` x 90 degrees."""
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image
