"""The av_sync stage: offsets and their sign, confidence, clips without audio or without events.

Test videos (H.264 96x72, 4 s, 25 fps unless said, AAC audio) show a bright square on a dark
background that jumps to a new place at irregular event times (one visual change per event); the
audio has a short noise burst at each event time shifted by a known offset (> 0: the audio is
late). They are decoded through the pipeline's own path (``decode.init_worker`` / ``decode``).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lavis.common.registry import registry
from lavis.datasets.video import VideoInfo
from lavis.pipeline import decode
from lavis.pipeline.sources import Row
# importing the module registers the stage, which decode.init_worker builds by name
from lavis.pipeline.stages.av_sync import AvSyncStage, estimate_offset, onset_strength
from lavis.pipeline.stages.base import Clip

FPS, SECONDS, W, H = 25, 4.0, 96, 72
FRAME = 1 / FPS
# event times (s, on 25 fps frames); all gaps differ, so only one lag lines them all up
EVENTS = [k * FRAME for k in (6, 17, 24, 38, 45, 61, 66, 80, 91)]


def picture(event: int) -> np.ndarray:
    """Frame content after the ``event``-th event (-1: before any): the square somewhere new."""
    img = np.full((H, W, 3), 30, np.uint8)
    if event >= 0:
        rng = np.random.default_rng(event)
        x, y = int(rng.integers(0, W - 24)), int(rng.integers(0, H - 24))
        img[y : y + 24, x : x + 24] = 230
    return img


def bursts(times: list[float], seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """30 ms noise bursts (instant attack, exponential decay) starting at ``times``."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(seconds * rate), np.float32)
    n = round(0.03 * rate)
    for t in times:
        start = round(t * rate)
        if 0 <= start < len(out):
            burst = 0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.008 * rate))
            out[start : start + n] += burst[: len(out) - start].astype(np.float32)
    return out.clip(-1, 1)


def write(path: Path, audio: np.ndarray | None, rate: int = 16000, static: bool = False,
          fps: int = FPS, audio_start: float = 0.0) -> Path:
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        video.options = {"threads": "1"}
        stream = out.add_stream("aac", rate=rate) if audio is not None else None  # before any mux
        for i in range(round(SECONDS * fps)):
            event = -1 if static else sum(e <= i / fps + 1e-6 for e in EVENTS) - 1
            for packet in video.encode(av.VideoFrame.from_ndarray(picture(event), format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if stream is not None:
            frame = av.AudioFrame.from_ndarray(audio[None, :], format="fltp", layout="mono")
            # a pts makes the encoder's first packet start at -1024 (its priming samples): the
            # muxer then writes the edit list that has decoders drop them, as ffmpeg's CLI does
            frame.sample_rate, frame.pts, frame.time_base = rate, round(audio_start * rate), Fraction(1, rate)
            for packet in [*stream.encode(frame), *stream.encode()]:
                out.mux(packet)
    return path


def synced(path: Path, offset: float, rate: int = 16000, fps: int = FPS) -> Path:
    return write(path, bursts([e + offset for e in EVENTS], SECONDS, rate), rate, fps=fps)


def run_stage(path: Path, **kwargs) -> dict:
    decode.init_worker([{"name": "av_sync", **kwargs}])
    clip = decode.decode(decode.Work(Row(id=path.stem, video_id=path.stem, path=str(path))), 60)
    assert isinstance(clip, Clip), clip
    assert clip.frames["av_sync"].shape == (round(SECONDS * FPS), H, W, 3)  # <= 25 fps analysis
    return AvSyncStage(**kwargs).process([clip])[0]


@pytest.mark.parametrize("offset,rate,fps", [(-0.3, 16000, 25), (0.0, 16000, 25), (0.2, 44100, 25),
                                             (0.5, 16000, 25), (0.07, 16000, 25), (-0.13, 44100, 50)])
def test_offset_and_sign(tmp_path: Path, offset: float, rate: int, fps: int) -> None:
    result = run_stage(synced(tmp_path / "v.mp4", offset, rate, fps))
    print(f"offset {offset:+.2f} s ({rate} Hz, {fps} fps) -> {result}")
    assert result["has_audio"] is True
    assert abs(result["av_offset"] - offset) <= FRAME  # within a frame, as asked...
    assert abs(result["av_offset"] - offset) <= 0.01  # ...and in fact within a quarter of one
    if offset:
        assert np.sign(result["av_offset"]) == np.sign(offset)
    assert result["av_confidence"] > 0.8


def test_an_audio_stream_that_starts_late_is_placed_on_the_video_timeline(tmp_path: Path) -> None:
    """Audio whose stream begins 0.4 s after the video: its sample 0 is at 0.4 s, so bursts
    written in sync with the pictures relative to the audio's own start are heard 0.4 s late."""
    path = write(tmp_path / "late.mp4", bursts(EVENTS, SECONDS, 16000), audio_start=0.4)
    result = run_stage(path)
    assert result["av_offset"] == pytest.approx(0.4, abs=0.04), result


def test_unrelated_audio_has_low_confidence(tmp_path: Path) -> None:
    """Chance level: steady noise scores low; bursts at other times line up by chance with some
    of the 9 events at some lag, so they score higher (8 seeds: 0.26-0.51), still far below sync."""
    rng = np.random.default_rng(7)
    noise = (0.1 * rng.standard_normal(round(SECONDS * 16000))).astype(np.float32)
    other = sorted(rng.uniform(0.1, SECONDS - 0.1, 9).tolist())  # bursts unrelated to the events
    noisy = run_stage(write(tmp_path / "noise.mp4", noise))
    unrelated = run_stage(write(tmp_path / "other.mp4", bursts(other, SECONDS, 16000, seed=3)))
    print(f"steady noise -> {noisy}, unrelated bursts -> {unrelated}")
    assert noisy["has_audio"] and noisy["av_confidence"] < 0.4
    assert unrelated["has_audio"] and unrelated["av_confidence"] < 0.6
    synced_confidence = run_stage(synced(tmp_path / "synced.mp4", 0.0))["av_confidence"]
    assert synced_confidence > max(0.8, 1.5 * unrelated["av_confidence"], 2 * noisy["av_confidence"])


def test_no_audio_stream(tmp_path: Path) -> None:
    assert run_stage(write(tmp_path / "mute.mp4", None)) == {
        "av_offset": None, "av_confidence": None, "has_audio": False}


def test_silent_audio_and_static_video(tmp_path: Path) -> None:
    silent = np.zeros(round(SECONDS * 16000), np.float32)
    nothing = {"av_offset": None, "av_confidence": 0.0, "has_audio": True}
    assert run_stage(write(tmp_path / "silent.mp4", silent)) == nothing
    clicks = bursts(EVENTS, SECONDS, 16000)
    assert run_stage(write(tmp_path / "static.mp4", clicks, static=True)) == nothing


def test_estimate_offset_on_synthetic_signals() -> None:
    rng = np.random.default_rng(0)
    step, n = 0.04, 150
    t = np.arange(n) * step
    events = np.sort(rng.uniform(0.5, 5.5, 10))

    def pulses(shift: float) -> np.ndarray:  # narrow pulses at the event times + shift (s)
        return sum(np.exp(-0.5 * ((t - e - shift) / 0.03) ** 2) for e in events)

    for lag in (-0.36, -0.12, 0.0, 0.2, 0.52, 0.13, -0.27):  # whole and fractional steps;
        # lag > 0: the audio pulses come later than the visual ones, so the offset is positive
        audio = pulses(lag) + 0.05 * rng.standard_normal(n)
        offset, confidence = estimate_offset(pulses(0.0), audio, step, max_offset=1.0)
        assert abs(offset - lag) < 0.01, (lag, offset)
        assert confidence > 0.7
    offset, confidence = estimate_offset(pulses(0.0), rng.standard_normal(n), step)
    assert confidence < 0.4
    assert estimate_offset(np.zeros(n), pulses(0.0), step) == (None, 0.0)
    assert estimate_offset(pulses(0.0), np.ones(n), step) == (None, 0.0)


def test_onset_strength_places_a_click_between_its_grid_points() -> None:
    rate, step = 16000, 0.04
    for t0 in (0.4, 0.8133, 1.0 + step / 2):  # on a grid point, inside a step, halfway
        env = onset_strength(bursts([t0], 2.0, rate), rate, 0.0, 0.001, 2000)  # the flux itself
        fine = np.arange(2000) * 0.001
        assert abs(float((env * fine).sum() / env.sum()) - t0) < 0.005  # centred on the onset
        env = onset_strength(bursts([t0], 2.0, rate), rate, step, step, 49)  # the analysis grid
        grid = step * np.arange(1, 50)
        near = np.abs(grid - t0) < step * 1.5
        assert env[near].sum() > 0.95 * env.sum()  # all at the grid points next to the onset...
        assert abs(float((env * grid).sum() / env.sum()) - t0) < 0.006  # ...split by position
        print(f"click at {t0:.4f} s -> centroid {(env * grid).sum() / env.sum():.4f} s on the grid")


def test_select_frames_and_registration() -> None:
    assert registry.get("stage", "av_sync") is AvSyncStage and AvSyncStage.needs_audio

    def info(n: int, fps: float) -> VideoInfo:
        return VideoInfo(n, fps, n / fps, W, H, tuple(i / fps for i in range(n)))

    stage = AvSyncStage(max_fps=25, max_frames=300)
    assert stage.select_frames(info(100, 25)) == list(range(100))
    assert stage.select_frames(info(100, 50)) == list(range(0, 100, 2))
    long = stage.select_frames(info(1000, 25))  # 40 s: the 12 s in the middle
    assert long == list(range(350, 650))
    assert stage.select_frames(info(1, 25)) == []
