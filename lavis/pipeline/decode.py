"""Decoding clips for the stages, in worker processes ahead of the models.

Each worker builds its own (model-free) stage objects from the specs, so it can ask each stage
which frames it wants; one clip is opened once, the union of those frames decoded once, and
audio extracted when a stage needs it. Clips are always files (an archive member is spooled to
one first), so a worker never holds a whole clip in memory. Failures come back as error strings,
never exceptions, so one bad clip cannot stop a shard; a decoder that hangs is abandoned after
``timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from lavis.common.lifetime import end_with_parent
from lavis.datasets.video import VideoDecodeError, call_with_timeout, open_video
from lavis.pipeline.sources import Row
from lavis.pipeline.stages.base import Clip, Stage, build_stage

AUDIO_RATE = 16000

_stages: list[Stage] = []  # this worker's stage objects (no models loaded)


@dataclass
class Work:
    """One clip to decode: a path row, or an archive member's row with the file the member was
    spooled to (``discard`` removes it once decoded) or why the member was not read."""

    row: Row
    spooled: Path | None = None
    name: str = ""  # the archive member's name, for messages
    error: str | None = None

    @property
    def source(self) -> str:
        return str(self.spooled) if self.spooled is not None else self.row.path

    def discard(self) -> None:
        if self.spooled is not None:
            self.spooled.unlink(missing_ok=True)


def init_worker(stage_specs: list[dict[str, Any]]) -> None:
    """The stages, built once per decoding process."""
    global _stages
    _stages = [build_stage(spec) for spec in stage_specs]


def start_worker(stage_specs: list[dict[str, Any]], parent: int) -> None:
    """Process-pool initializer: the worker ends with its rank (``parent``; a pool worker would
    otherwise wait on its task queue forever) and builds its stages."""
    end_with_parent(f"decode worker of {parent}", parent)
    init_worker(stage_specs)


def decode(work: Work, timeout: float | None) -> Clip | tuple[Row, str]:
    """The clip with every stage's frames (and audio), or ``(row, reason)``."""
    name = work.name or work.row.path or work.row.id
    if work.error is not None:
        return work.row, work.error
    try:
        return call_with_timeout(lambda: _decode(work, name), timeout, name)
    except (VideoDecodeError, ValueError, OSError) as err:
        return work.row, _reason(work, str(err))
    except Exception as err:  # noqa: BLE001 - a decoder surprise is this clip's error, not the job's end
        return work.row, _reason(work, f"{type(err).__name__}: {err}")


def _reason(work: Work, text: str) -> str:
    """An error's text with an archive member named as in its archive, not by its spool file
    (a temporary name would make the records of two runs differ)."""
    return text.replace(str(work.spooled), work.name) if work.spooled is not None else text


def _decode(work: Work, name: str) -> Clip:
    source = work.source
    with open_video(source, name=name) as reader:
        info = reader.info
        wanted = {stage.name: stage.select_frames(info) for stage in _stages}
        union = sorted({i for indices in wanted.values() for i in indices})
        decoded = reader.get_frames(union) if union else None
    row = work.row
    clip = Clip(row.id, row.video_id, row.start, row.end, info)
    if decoded is not None:
        position = {index: k for k, index in enumerate(decoded.indices)}
        for stage_name, indices in wanted.items():
            if indices:
                clip.frames[stage_name] = decoded.frames[[position[i] for i in indices]]
                clip.frame_times[stage_name] = [info.timestamps[i] for i in indices]
    if any(stage.needs_audio for stage in _stages):
        clip.audio, clip.sample_rate = read_audio(source, name)
    return clip


def read_audio(source: str, name: str, rate: int = AUDIO_RATE) -> tuple[np.ndarray | None, int]:
    """The first audio stream as mono float32 at ``rate`` Hz, aligned so that sample 0 is the
    first video frame's time (an audio stream starting later is padded with silence, an earlier
    one trimmed); ``(None, rate)`` without an audio stream."""
    try:
        with av.open(source) as container:
            if not container.streams.audio:
                return None, rate
            audio = container.streams.audio[0]
            lead = _start_seconds(audio) - (_start_seconds(container.streams.video[0]) if container.streams.video else 0.0)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = []
            for frame in container.decode(audio):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except av.error.FFmpegError as err:
        raise VideoDecodeError(name, f"audio could not be decoded: {err}") from err
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    shift = round(lead * rate)
    if shift > 0:
        samples = np.concatenate([np.zeros(shift, np.float32), samples])
    elif shift < 0:
        samples = samples[-shift:]
    return samples, rate


def _start_seconds(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
