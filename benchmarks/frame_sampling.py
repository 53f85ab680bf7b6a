"""``frame_sampling``: N uniformly spaced frames at 224 px from one video, four ways.

- the project's reader (``lavis.datasets.video.read_clip``, default PyAV backend: seek to the
  keyframe before each frame, decode forward, resize in libswscale);
- decode every frame with PyAV and keep the sampled ones (what PLLaVA / Open-Sora style loaders
  do; the baseline). Only the kept frames are converted to RGB, which flatters it;
- OpenCV ``VideoCapture`` seeking with ``CAP_PROP_POS_FRAMES`` before each frame (LAVIS's eval loader);
- decord ``VideoReader.get_batch`` (when decord imports).

Every decoder runs on one thread, and every baseline resizes with the project's
``resize_frames`` (short side to 224, centre crop), so only the decoding strategy differs. Each
result is also compared with the decode-every-frame frames (mean absolute pixel difference, at
224 px, where resizers differ slightly), and the project's frames must equal them exactly at
their native size (``checks.project_frames_exact``): a fast reader must also be a right one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np

from benchmarks.harness import Case, CaseResult, Context, Group, Target, Variant
from benchmarks.videos import FULL_VIDEOS, TINY_VIDEOS, VideoSpec, ensure_video, keyframe_indices
from lavis.datasets.video import build_frame_sampler, read_clip, resize_frames

logger = logging.getLogger(__name__)

SIZE = 224
FRAME_COUNTS = (8, 16)
PROJECT = "lavis read_clip (pyav)"
DECODE_ALL = "pyav decode every frame"
OPENCV = "opencv seek per frame"
DECORD = "decord get_batch"
LIBRARIES = (OPENCV, DECORD)
CLOSE_TO_FASTEST = 1.10  # the project may be at most 10% slower than the fastest library
VS_DECODE_ALL = 3.0  # and at least this much faster than decoding everything, on long GOP-250 video


def uniform_indices(total: int, n: int) -> list[int]:
    """The project's ``uniform`` sampler on a frame count some library reported."""
    return build_frame_sampler("uniform")(SimpleNamespace(num_frames=total), n)


def project(path: Path, n: int) -> np.ndarray:
    return read_clip(str(path), build_frame_sampler("uniform"), n, size=SIZE).frames


def decode_every_frame(path: Path, n: int) -> np.ndarray:
    return resize_frames(decode_every_frame_native(path, n), SIZE)


def decode_every_frame_native(path: Path, n: int) -> np.ndarray:
    """The sampled frames at their own size, found by decoding the whole video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        wanted = set(uniform_indices(stream.frames, n))
        kept = {}
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                kept[i] = frame.to_ndarray(format="rgb24")
    return np.stack([kept[i] for i in sorted(kept)])


def opencv_seek(path: Path, n: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    try:
        frames = []
        for i in uniform_indices(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), n):
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, bgr = cap.read()
            if not ok:
                raise RuntimeError(f"OpenCV could not read frame {i} of {path}")
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return resize_frames(np.stack(frames), SIZE)


def decord_batch(path: Path, n: int) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    return resize_frames(reader.get_batch(uniform_indices(len(reader), n)).asnumpy(), SIZE)


def _decord_missing() -> str | None:
    try:
        import decord  # noqa: F401
    except Exception as err:  # ImportError, or a broken native library
        return f"decord not importable ({type(err).__name__}: {err})"
    return None


READERS: dict[str, Callable[[Path, int], np.ndarray]] = {
    PROJECT: project, DECODE_ALL: decode_every_frame, OPENCV: opencv_seek, DECORD: decord_batch,
}


def run(ctx: Context) -> CaseResult:
    result = CaseResult()
    specs = TINY_VIDEOS if ctx.tiny else FULL_VIDEOS
    folder = ctx.folder("videos")
    videos = {spec: ensure_video(spec, folder) for spec in specs}  # write all first: timings stay clean
    decord_skip = _decord_missing()
    for spec, path in videos.items():
        keys = keyframe_indices(path)
        for n in FRAME_COUNTS:
            group = result.group(f"{spec.name} {n}f", DECODE_ALL, video=spec.name, frames=n,
                                 keyframes=len(keys), keyframe_spacing=spec.gop)
            outputs: dict[str, np.ndarray] = {}
            for name, reader in READERS.items():
                if name == DECORD and decord_skip:
                    group.add(Variant(name, skipped=decord_skip))
                    continue
                variant, outputs[name] = ctx.time_variant(group, name, lambda r=reader: r(path, n), items=n)
                variant.info["shape"] = list(outputs[name].shape)
            for variant in group.variants:  # the decode-every-frame frames are the right ones
                if variant.name in outputs and variant.name != DECODE_ALL:
                    variant.info["mean_abs_diff_vs_decode_all"] = _difference(outputs[variant.name], outputs[DECODE_ALL])
            group.info["project_frames_exact"] = project_frames_exact(path, n)
    result.checks["project_frames_exact"] = all(g.info["project_frames_exact"] for g in result.groups)
    result.target = target(result.groups, specs)
    result.info["decoder_threads"] = 1
    return result


def project_frames_exact(path: Path, n: int) -> bool:
    """The project's frames at native size equal, pixel for pixel, those found by decoding everything."""
    native = read_clip(str(path), build_frame_sampler("uniform"), n).frames
    return bool(np.array_equal(native, decode_every_frame_native(path, n)))


def _difference(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.shape != b.shape:
        return None
    return round(float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()), 3)


def target(groups: list[Group], specs: list[VideoSpec]) -> Target:
    """Within 10% of the fastest library everywhere; >= 3x decode-every-frame on 60 s GOP 250."""
    worst_vs_library, long_gop = None, []
    for g in groups:
        libraries = [g.median(name) for name in LIBRARIES if g.get(name).timing is not None]
        project_s = g.median(PROJECT)
        if libraries and project_s is not None:
            slowdown = project_s / min(libraries)
            worst_vs_library = slowdown if worst_vs_library is None else max(worst_vs_library, slowdown)
        if g.info["video"] in {s.name for s in specs if s.seconds == 60 and s.gop == 250}:
            long_gop.append((g.name, g.ratio(PROJECT)))
    parts, met = [], []
    if worst_vs_library is not None:
        met.append(worst_vs_library <= CLOSE_TO_FASTEST)
        parts.append(f"slowest project/fastest-library time {worst_vs_library:.2f} (limit {CLOSE_TO_FASTEST})")
    if long_gop:
        lowest = min(r for _, r in long_gop if r is not None)
        met.append(lowest >= VS_DECODE_ALL)
        parts.append(f"lowest speed-up over decode-every-frame on 60 s GOP-250 video {lowest:.2f}x (goal {VS_DECODE_ALL}x)")
    else:
        parts.append("no 60 s GOP-250 video in this run (use --size full)")
    return Target(all(met) if met else None, "; ".join(parts))


CASE = Case(
    name="frame_sampling",
    description=f"{'/'.join(map(str, FRAME_COUNTS))} uniformly sampled frames at {SIZE} px per video",
    baseline=DECODE_ALL,
    target=f"project within {CLOSE_TO_FASTEST - 1:.0%} of the fastest library (OpenCV / decord) on every video, "
           f"and >= {VS_DECODE_ALL:g}x faster than decoding every frame on the 60 s GOP-250 videos",
    run=run,
)
