"""decord and torchcodec behind the same API, used only where they are known to be exact.

Neither library's own frame count or timestamps are trusted. Each reader also opens the video
with ``PyAVReader`` (a packet scan, no decoding) for the true frame table, and hands requests
over to PyAV (with a log line) on any stream the backend cannot be trusted on, or on any sign
that it went wrong: it fails to open or decode, returns frames of another size, or (torchcodec,
whose timestamps are those of the frames it decoded) timestamps other than the ones asked for.

decord 0.6.0 (unmaintained since 2021) reports timestamps from its own index, not from what it
decoded, so its wrong frames come with right timestamps; it is used only where its seeking is
exact by construction. It seeks to the keyframe before a frame and then counts decoded frames,
numbering keyframes by decoding order. That count is right only if (a) its frame count is the
stream's (an mp4 edit list breaks this), (b) its keyframe numbers are the keyframes' places in
presentation order (frames decoded after a keyframe but shown before it, as in open GOPs, break
this), (c) the decoder outputs every frame from the keyframe on (it drops frames after H.264
open-GOP I frames, intra-refresh recovery points and HEVC CRA pictures, so every H.264/HEVC
keyframe must be IDR), and the first frame is a keyframe. It also cannot return frames turned
by 90 or 270 degrees, and hangs on some MPEG-TS files. Codecs not listed in ``DECORD_CODECS``
go to PyAV (decord 0.6 cannot open AV1, for one).
"""

from __future__ import annotations

import io
import logging
import os
from typing import BinaryIO

import numpy as np

from lavis.datasets.video.base import Frames, VideoReader, VideoSource, source_name
from lavis.datasets.video.pyav_reader import PyAVReader
from lavis.datasets.video.resize import ResizeMode, resize_frames

logger = logging.getLogger(__name__)

DECORD_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "mpeg4", "mjpeg"})


class CheckedReader(VideoReader):
    """Decodes with a backend where it can be trusted; verifies; falls back to PyAV."""

    backend = ""

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
        self.size, self.resize_mode = size, resize_mode
        self._reference = PyAVReader(source, size=size, resize_mode=resize_mode, threads=threads, name=self.name)
        self.info = self._reference.info
        self._trusted = False
        reason = self._distrust_stream()
        if reason is not None:
            logger.info("%s: reading with PyAV, not %s: %s", self.name, self.backend, reason)
            return
        try:
            self._open_backend(source, threads)
        except Exception as err:  # the backends raise their own, undocumented error types
            logger.warning("%s: %s cannot open it (%s); reading with PyAV", self.name, self.backend, err)
            return
        reason = self._distrust_backend()
        if reason is not None:
            logger.info("%s: reading with PyAV, not %s: %s", self.name, self.backend, reason)
            return
        self._trusted = True

    def _distrust_stream(self) -> str | None:
        """Why the backend cannot be trusted on this stream (from PyAV's scan), or None."""
        if not self._reference.seekable:
            # MPEG-TS, raw streams: decord returns wrong frames with plausible timestamps, or hangs
            return "the container has no seek index"
        return None

    def _open_backend(self, source: VideoSource, threads: int) -> None:
        raise NotImplementedError

    def _distrust_backend(self) -> str | None:
        """Why the opened backend cannot be trusted (its view disagrees with PyAV's), or None."""
        return None

    def _decode(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(T, H, W, 3)`` uint8 RGB frames and the start time (s) the backend reports for each."""
        raise NotImplementedError

    def get_frames(self, indices: list[int]) -> Frames:
        indices = self.check_indices(indices)
        if self._trusted:
            try:
                frames, reported = self._decode(indices)
            except Exception as err:  # undocumented backend errors: let PyAV try
                logger.warning("%s: %s failed (%s); reading with PyAV", self.name, self.backend, err)
                self._trusted = False
            else:
                expected = np.array([self.info.timestamps[i] for i in indices])
                problem = self._check(frames, reported, expected, indices)
                if problem is None:
                    if self.size is not None:
                        frames = resize_frames(frames, self.size, self.resize_mode)
                    return Frames(frames, indices, expected.tolist())
                logger.warning("%s: %s %s; reading with PyAV", self.name, self.backend, problem)
                self._trusted = False
        return self._reference.get_frames(indices)

    def _check(self, frames: np.ndarray, reported: np.ndarray, expected: np.ndarray, indices: list[int]) -> str | None:
        """What is wrong with what the backend returned, or None."""
        if frames.shape[1:] != (self.info.height, self.info.width, 3):
            return f"returned {frames.shape[2]}x{frames.shape[1]} frames, not {self.info.width}x{self.info.height}"
        tolerance = 0.5 / max(self.info.fps, 1e-6)
        worst = int(np.argmax(np.abs(reported - expected)))
        if abs(reported[worst] - expected[worst]) > tolerance:
            return (f"returned the frame at {reported[worst]:.3f}s for frame {indices[worst]} "
                    f"(at {expected[worst]:.3f}s)")
        return None

    def close(self) -> None:
        self._reference.close()


class DecordReader(CheckedReader):
    backend = "decord"

    def _distrust_stream(self) -> str | None:
        ref = self._reference
        if ref.codec not in DECORD_CODECS:
            return f"its seeking is not known to be exact on {ref.codec}"
        if ref.non_idr_keyframes:
            return (f"{ref.non_idr_keyframes} keyframes are not IDR (open GOP or intra refresh); "
                    "it miscounts frames after seeking to them")
        if ref.keyframe_indices[:1] != [0]:
            return "the first frame is not a keyframe"
        if ref.rotation in (90, 270):
            return f"it cannot return frames turned by {ref.rotation} degrees"
        return super()._distrust_stream()

    def _open_backend(self, source: VideoSource, threads: int) -> None:
        import decord

        self._vr = decord.VideoReader(_plain_source(source), ctx=decord.cpu(0), num_threads=threads)

    def _distrust_backend(self) -> str | None:
        if len(self._vr) != self.info.num_frames:
            return f"decord counts {len(self._vr)} frames, the stream has {self.info.num_frames}"
        keys = [int(k) for k in self._vr.get_key_indices()]
        if keys != self._reference.keyframe_indices:
            return (f"its keyframe numbers {keys[:4]} are not the keyframes' places "
                    f"{self._reference.keyframe_indices[:4]} (frames decoded after a keyframe are shown before it)")
        return None

    def _decode(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        frames = self._vr.get_batch(indices).asnumpy()
        starts = np.asarray(self._vr.get_frame_timestamp(indices))[:, 0]
        return frames, starts - float(np.asarray(self._vr.get_frame_timestamp([0]))[0, 0])


class TorchCodecReader(CheckedReader):
    backend = "torchcodec"

    def _open_backend(self, source: VideoSource, threads: int) -> None:
        from torchcodec.decoders import VideoDecoder

        source = _plain_source(source)
        if isinstance(source, io.BytesIO):
            source = source.getvalue()
        self._decoder = VideoDecoder(
            source, seek_mode="exact", num_ffmpeg_threads=threads, dimension_order="NHWC"
        )
        self._first = float(self._decoder.get_frames_at([0]).pts_seconds[0])

    def _distrust_backend(self) -> str | None:
        rotation = getattr(self._decoder.metadata, "rotation", None)  # set by versions that turn frames
        if round(rotation or 0) % 360 != self._reference.rotation:
            return f"it turns frames by {rotation} degrees, the display matrix by {self._reference.rotation}"
        return None

    def _decode(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        batch = self._decoder.get_frames_at(indices)
        return batch.data.numpy(), batch.pts_seconds.numpy() - self._first


def _plain_source(source: VideoSource) -> str | BinaryIO:
    """A path string or a rewound binary file: what both backends accept."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    source.seek(0)
    return source
