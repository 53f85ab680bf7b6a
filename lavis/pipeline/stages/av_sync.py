"""Audio-video offset of a clip: when sounds happen relative to the visual changes that cause them.

Method: both streams become an "event strength" signal on one uniform time grid (the analysis
rate ``r = min(fps, max_fps)``, step ``h = 1 / r``), and the lag that best lines them up is the
offset.

  * Visual motion energy: frames are converted to grayscale and shrunk (long side <= ``max_side``);
    ``v(t_k)`` = mean absolute difference between frames ``k - 1`` and ``k``, placed at ``t_k``,
    the time frame ``k`` (the change) appears on screen.
  * Audio onset strength: positive spectral flux ``sum_f max(0, L_n(f) - L_{n-1}(f))``, with
    ``L = log(1 + 1000 |STFT| / sum(window))`` on 16 ms Hann windows every 4 ms; each value sits
    halfway between its two windows' centres and is shared linearly between its two neighbouring
    grid points (a triangle kernel), so an onset between two frames keeps its sub-frame position.
  * Both are smoothed (Gaussian, ``sigma`` = 0.75 grid steps, so a one-frame event becomes a peak
    a parabola can place between lags) and high-passed (minus a 0.5 s moving average: fades,
    steady motion or hum carry no timing), then cross-correlated: for each lag ``L`` in
    ``[-M, M]``, ``M = round(max_offset * r)``, ``c(L)`` is the Pearson correlation of ``v[k]``
    with ``a[k + L]`` over their overlap.
  * ``av_offset = (L* + d) * h``: ``L*`` the best lag, ``d`` in [-0.5, 0.5] its parabolic
    (sub-frame) refinement through ``c(L* - 1), c(L*), c(L* + 1)``.

Sign convention: ``av_offset > 0`` means the audio lags (is behind) the video: a sound is heard
``av_offset`` seconds after the frame that shows its cause; ``< 0``: the audio is early. To fix a
file, delay the video (or advance the audio) by ``av_offset``. A visual change is dated by the
frame that first shows it, which is exact for cuts and rendered content; a camera shows an event
up to one frame after it happens, so a perfectly synced recording reads about ``-h/2`` on average.

Confidence: ``av_confidence = clip(c(L*) - median_L c(L), 0, 1)``: how much better the best lag
explains the audio than a typical lag does, in correlation units. It is ~1 for a clean match and
small for unrelated streams: chance level scales like ``sqrt(ln(2M + 1) / N)``, ``N`` grid points
(~0.25-0.5 for 4 s at 25 fps, less for longer clips). A periodic pattern (several equally good
lags) scores no higher than the height of its peaks above the median. Without audio: ``{"av_offset": None,
"av_confidence": None, "has_audio": False}``; silent audio or a static video (nothing to line
up): offset None, confidence 0.

Timing assumption: ``Clip.audio`` sample 0 is at the first frame's time (``read_audio`` decodes
the audio stream from its start; frame times count from the first frame), so a container whose
audio stream starts later than its video shifts the estimate by that difference.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from lavis.common.registry import registry
from lavis.datasets.video import VideoInfo
from lavis.pipeline.stages.base import Clip, Stage

STFT_WINDOW = 0.016  # s: long enough for a spectrum, short enough to place an onset within a frame
STFT_HOP = 0.004  # s
HIGHPASS = 0.5  # s: moving-average window subtracted from both signals
SMOOTH = 0.75  # samples (grid steps): Gaussian smoothing of both signals
MIN_MOTION = 0.25  # grey levels: a clip whose frame differences vary less than this is static
MIN_AUDIO = 1e-4  # peak amplitude (-80 dBFS) under which the audio counts as silent


def motion_energy(frames: np.ndarray, max_side: int = 64) -> np.ndarray:
    """``len(frames) - 1`` mean absolute differences of consecutive downscaled grayscale frames."""
    grays = []
    for frame in frames:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        k = max_side / max(gray.shape)
        if k < 1:  # speed; a mean difference does not need detail
            size = (max(4, round(gray.shape[1] * k)), max(4, round(gray.shape[0] * k)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        grays.append(gray.astype(np.float32))
    return np.array([np.abs(b - a).mean() for a, b in zip(grays, grays[1:])], np.float64)


def onset_strength(audio: np.ndarray, sample_rate: int, start: float, step: float,
                   count: int) -> np.ndarray:
    """Positive spectral flux of ``audio`` on the grid ``start + step * k``, ``k < count``.

    Each flux value is shared linearly between its two neighbouring grid points (a triangle
    kernel), so an onset between frames moves weight from one to the other: sub-frame timing.
    """
    win, hop = round(STFT_WINDOW * sample_rate), round(STFT_HOP * sample_rate)
    first = max(0, int((start - step) * sample_rate) - win)  # only the samples near the grid
    audio = audio[first : int((start + step * count) * sample_rate) + win]
    x = np.pad(audio.astype(np.float64), (win // 2, win))  # window n is centred at sample n * hop
    n = (len(x) - win) // hop + 1
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop][:n]
    window = np.hanning(win)
    level = np.log1p(1000 * np.abs(np.fft.rfft(frames * window, axis=1)) / window.sum())
    flux = np.maximum(level[1:] - level[:-1], 0).sum(axis=1)  # onset between windows n - 1 and n
    times = (first + (np.arange(1, n) - 0.5) * hop) / sample_rate  # halfway between the windows
    position = (times - start) / step
    k = np.floor(position).astype(int)
    out = np.zeros(count + 1)
    inside = (k >= 0) & (k < count)
    np.add.at(out, k[inside], flux[inside] * (1 - (position - k)[inside]))
    np.add.at(out, k[inside] + 1, flux[inside] * (position - k)[inside])
    return out[:count]


def bandpass(x: np.ndarray, width: int, sigma: float = SMOOTH) -> np.ndarray:
    """``x`` smoothed by a Gaussian of ``sigma`` samples, minus its moving average over ``width``.

    The smoothing turns one-sample events into peaks the parabola can place between samples;
    the moving average removes slow trends. Both average over the samples there are at the edges.
    """
    def average(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        return np.convolve(x, kernel, "same") / np.convolve(np.ones_like(x), kernel, "same")

    if sigma > 0:
        r = np.arange(-math.ceil(3 * sigma), math.ceil(3 * sigma) + 1)
        x = average(x, np.exp(-0.5 * (r / sigma) ** 2))
    return x - (average(x, np.ones(width)) if width >= 3 and len(x) >= 3 else x.mean())


def estimate_offset(visual: np.ndarray, audio: np.ndarray, step: float,
                    max_offset: float = 1.0) -> tuple[float | None, float]:
    """(offset in s, confidence) of two event signals on the same grid of ``step`` seconds.

    ``offset > 0``: ``audio[k + offset / step]`` matches ``visual[k]`` (the audio lags).
    ``(None, 0.0)`` when either signal is flat or too short.
    """
    n = min(len(visual), len(audio))
    v = bandpass(np.asarray(visual[:n], np.float64), round(HIGHPASS / step) | 1)
    a = bandpass(np.asarray(audio[:n], np.float64), round(HIGHPASS / step) | 1)
    max_lag = min(round(max_offset / step), n - 4)
    if max_lag < 1 or v.std() < 1e-9 or a.std() < 1e-9:
        return None, 0.0
    corr = []
    for lag in range(-max_lag, max_lag + 1):  # Pearson over the overlap of v[k] and a[k + lag]
        x, y = (v[: n - lag], a[lag:]) if lag >= 0 else (v[-lag:], a[: n + lag])
        x, y = x - x.mean(), y - y.mean()
        denom = math.sqrt(float(x @ x) * float(y @ y))
        corr.append(float(x @ y) / denom if denom > 1e-12 else 0.0)
    c = np.array(corr)
    best = int(np.argmax(c))
    shift = 0.0
    if 0 < best < len(c) - 1:  # parabola through the peak and its neighbours
        left, mid, right = c[best - 1 : best + 2]
        curvature = left - 2 * mid + right
        if curvature < 0:
            shift = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    confidence = float(np.clip(c[best] - np.median(c), 0.0, 1.0))
    return (best - max_lag + shift) * step, confidence


@registry.register("stage", "av_sync")
class AvSyncStage(Stage):
    """``av_offset`` (s, > 0: audio behind video), ``av_confidence`` and ``has_audio`` per clip."""

    name = "av_sync"
    needs_audio = True

    def __init__(self, max_offset: float = 1.0, max_fps: float = 25.0, max_frames: int = 300,
                 max_side: int = 64) -> None:
        self.max_offset, self.max_fps = max_offset, max_fps
        self.max_frames, self.max_side = max_frames, max_side

    def select_frames(self, info: VideoInfo) -> list[int]:
        """Frames at the analysis rate; beyond ``max_frames`` a window in the middle of the clip.

        A window rather than a lower rate: the offset is only as precise as the frame spacing,
        and ``max_frames`` at 25 fps (12 s) is plenty of events for one correlation peak.
        """
        if info.num_frames < 2 or info.duration <= 0:
            return []
        rate = min(info.fps, self.max_fps) if info.fps > 0 else self.max_fps
        count = max(2, min(self.max_frames, math.floor(info.duration * rate + 1e-6)))
        start = max(0.0, (info.duration - count / rate) / 2)
        first = info.timestamps[0]
        return sorted({info.index_at(first + start + k / rate) for k in range(count)})

    def process(self, clips: list[Clip]) -> list[dict[str, Any]]:
        return [self.process_one(clip) for clip in clips]

    def process_one(self, clip: Clip) -> dict[str, Any]:
        if clip.audio is None or clip.sample_rate is None:
            return {"av_offset": None, "av_confidence": None, "has_audio": False}
        frames, times = clip.frames.get(self.name), clip.frame_times.get(self.name)
        if frames is None or times is None or len(frames) < 3:
            return {"error": f"av_sync needs at least 3 frames, the clip has {clip.info.num_frames}"}
        nothing = {"av_offset": None, "av_confidence": 0.0, "has_audio": True}
        motion = motion_energy(frames, self.max_side)
        if len(clip.audio) == 0 or np.abs(clip.audio).max() < MIN_AUDIO or np.ptp(motion) < MIN_MOTION:
            return nothing  # silence or a static picture: nothing to line up
        t = np.asarray(times, np.float64)
        step = (t[-1] - t[0]) / (len(t) - 1)
        grid = t[0] + step * np.arange(1, len(t))  # uniform (variable-rate or resampled frames)
        visual = np.interp(grid, t[1:], motion)  # each difference at the time of its later frame
        audio = onset_strength(clip.audio, clip.sample_rate, grid[0], step, len(grid))
        offset, confidence = estimate_offset(visual, audio, step, self.max_offset)
        if offset is None:
            return nothing
        return {"av_offset": round(float(offset), 4), "av_confidence": round(confidence, 4),
                "has_audio": True}
