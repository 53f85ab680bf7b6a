"""Choosing k frames of a video for a question: candidates, the best frame per segment, uniform.

Candidates are the frames shown at ``0, 1/f, 2/f, ...`` seconds (``f = fps_target``). The
timeline is cut into ``segments`` equal parts (``k`` by default) and the best-scoring candidate of
each part is kept, so the k frames spread over the video instead of crowding around one moment;
with more segments than ``k``, the ``k`` best segment winners are kept. ``uniform_choice`` is the
baseline a selector must beat: the candidate nearest the middle of each of ``k`` segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from lavis.datasets.video import VideoInfo, VideoReader, fit_within, open_video
from lavis.models.clip_frame_selector.frames import FrameProcessor

WORKING_SIDE = 448  # candidates are scored at most this large (CLIP sees 224)


def candidate_indices(info: VideoInfo, fps_target: float) -> list[int]:
    """The frames shown at ``0, 1/fps_target, ...`` seconds (each frame once, in order)."""
    if fps_target <= 0:
        raise ValueError(f"fps_target must be > 0, got {fps_target}")
    times = np.arange(0.0, info.duration, 1.0 / fps_target)
    return sorted({info.index_at(float(t)) for t in times})


def segment_index(t: float, duration: float, segments: int) -> int:
    return min(int(t / duration * segments), segments - 1) if duration > 0 else 0


def best_per_segment(
    scores: Sequence[float], times: Sequence[float], duration: float, k: int, segments: int | None = None
) -> list[int]:
    """Positions (into ``times``) of the chosen candidates, in time order."""
    segments = segments or k
    winners: dict[int, int] = {}
    for i, t in enumerate(times):
        s = segment_index(t, duration, segments)
        if s not in winners or scores[i] > scores[winners[s]]:
            winners[s] = i
    chosen = sorted(winners.values(), key=lambda i: -scores[i])[:k]
    return sorted(chosen, key=lambda i: times[i])


def uniform_choice(times: Sequence[float], duration: float, k: int) -> list[int]:
    """Positions of the candidates nearest the middles of ``k`` equal segments (distinct)."""
    chosen: list[int] = []
    for s in range(k):
        middle = (s + 0.5) * duration / k
        order = np.argsort(np.abs(np.asarray(times) - middle), kind="stable")
        pick = next((int(i) for i in order if int(i) not in chosen), None)
        if pick is not None:
            chosen.append(pick)
    return sorted(chosen, key=lambda i: times[i])


def read_candidates(reader: VideoReader, fps_target: float, max_side: int = WORKING_SIDE,
                    chunk: int = 16) -> tuple[list[int], list[np.ndarray]]:
    """Candidate frame indices and the frames shrunk to ``max_side``, decoded a chunk at a time so
    a long 1080p video never sits in memory at full size."""
    indices = candidate_indices(reader.info, fps_target)
    frames: list[np.ndarray] = []
    for start in range(0, len(indices), chunk):
        frames += [fit_within(f, max_side) for f in reader.get_frames(indices[start : start + chunk]).frames]
    return indices, frames


@torch.no_grad()
def get_top4_frames(
    video_path: str | Path,
    caption: str,
    model,
    processor: FrameProcessor | None = None,
    device: str | torch.device | None = None,
    k: int = 4,
    fps_target: float = 2.0,
    segments: int | None = None,
    output_size: tuple[int, int] | None = (1920, 1080),
) -> tuple[list[np.ndarray], list[float], list[float]]:
    """The ``k`` frames of ``video_path`` most relevant to ``caption``: (frames, scores, timestamps).

    ``model`` is a ``ClipFrameSelector`` (``processor`` defaults to its own); frames come back as
    RGB uint8 at ``output_size`` (width, height), or at the video's size when it is ``None``.
    """
    if device is not None:
        model = model.to(device)
    model.eval()
    with open_video(video_path) as reader:
        candidates, small = read_candidates(reader, fps_target)
        times = [reader.info.timestamps[i] for i in candidates]
        scores = model.score(caption, small, processor).tolist()
        chosen = best_per_segment(scores, times, reader.info.duration, k, segments)
        frames = list(reader.get_frames([candidates[i] for i in chosen]).frames)
    if output_size is not None:
        frames = [cv2.resize(f, tuple(output_size), interpolation=cv2.INTER_LINEAR) for f in frames]
    return frames, [scores[i] for i in chosen], [times[i] for i in chosen]
