"""decord and torchcodec behind the same API, checked against PyAV's timestamp table.

Neither library's own frame count or timestamps are trusted: decord 0.6.0 (unmaintained since
2021) counts frames an mp4 edit list hides and returns frames off by that many, and hangs on
some MPEG-TS files. Each reader therefore also opens the video with ``PyAVReader`` (a packet
scan, no decoding) for the true table, compares the timestamps the backend reports for the
frames it returns, and on any disagreement hands the request to PyAV, with a warning.
"""

from __future__ import annotations

import io
import logging
import os
from typing import BinaryIO

import numpy as np

from lavis.datasets.video.base import Frames, VideoReader, VideoSource, source_name
from lavis.datasets.video.errors import VideoDecodeError
from lavis.datasets.video.pyav_reader import PyAVReader
from lavis.datasets.video.resize import ResizeMode, resize_frames

logger = logging.getLogger(__name__)


class CheckedReader(VideoReader):
    """Decodes with a backend; verifies against PyAV's table; falls back to PyAV."""

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
        # Containers without an index (MPEG-TS, raw streams): decord returns wrong frames with
        # plausible timestamps there, or hangs, so the check cannot be relied on; use PyAV.
        self._trusted = self._reference.seekable
        if not self._trusted:
            logger.info("%s: no seek index; reading with PyAV instead of %s", self.name, self.backend)
            return
        try:
            self._open_backend(source, threads)
        except Exception as err:  # the backends raise their own, undocumented error types
            self._reference.close()
            raise VideoDecodeError(self.name, f"{self.backend} cannot open it: {err}") from err

    def _open_backend(self, source: VideoSource, threads: int) -> None:
        raise NotImplementedError

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
                tolerance = 0.5 / max(self.info.fps, 1e-6)
                if np.all(np.abs(reported - expected) <= tolerance):
                    if self.size is not None:
                        frames = resize_frames(frames, self.size, self.resize_mode)
                    return Frames(frames, indices, expected.tolist())
                worst = int(np.argmax(np.abs(reported - expected)))
                logger.warning(
                    "%s: %s returned the frame at %.3fs for frame %d (at %.3fs); reading with PyAV",
                    self.name, self.backend, reported[worst], indices[worst], expected[worst],
                )
                self._trusted = False
        return self._reference.get_frames(indices)

    def close(self) -> None:
        self._reference.close()


class DecordReader(CheckedReader):
    backend = "decord"

    def _open_backend(self, source: VideoSource, threads: int) -> None:
        import decord

        self._vr = decord.VideoReader(_plain_source(source), ctx=decord.cpu(0), num_threads=threads)
        if len(self._vr) != self.info.num_frames:
            logger.warning(
                "%s: decord counts %d frames, the stream has %d; reading with PyAV",
                self.name, len(self._vr), self.info.num_frames,
            )
            self._trusted = False

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
