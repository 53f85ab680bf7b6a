"""Writing frames to an H.264 mp4 whose bytes depend only on the frames."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# One thread and fixed settings: x264's output is then a pure function of its input, so the
# same seed reproduces the same files byte for byte.
X264_OPTIONS = {"preset": "veryfast", "crf": "18", "threads": "1"}


def write_mp4(path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: int) -> None:
    """Encode RGB frames (H x W x 3 uint8, even sides) to ``path``; frame i gets pts i / fps.

    The file is written beside ``path`` and renamed into place, so a crash never leaves a
    truncated video under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = None
            for index, rgb in enumerate(frames):
                if stream is None:
                    stream = _add_stream(container, rgb.shape[1], rgb.shape[0], fps)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
            if stream is None:
                raise ValueError(f"no frames to write to {path}")
            container.mux(stream.encode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _add_stream(container: av.container.OutputContainer, width: int, height: int, fps: int) -> av.VideoStream:
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even frame sides, got {width}x{height}")
    stream = container.add_stream("libx264", rate=fps, options=dict(X264_OPTIONS))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.thread_count = 1
    stream.codec_context.time_base = Fraction(1, fps)
    return stream
