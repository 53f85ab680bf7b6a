"""Camera motion of a clip from dense optical flow: pan, tilt, zoom, static or unclassified.

Method: ``num_pairs`` frame pairs (``stride`` frames apart) spread over the clip are converted to
grayscale, downscaled (long side <= ``max_side``) and given to DIS optical flow (local patches, so
fast objects do not drag the background's flow along). Only textured pixels count (a flat area's
flow is zero whatever the camera does) and a 10% border is ignored. The camera's motion is the
background's, not that of the things moving across it: the inner region is cut into 8 x 8 cells,
each textured cell votes with its median flow, and the motion ``flow(p) = t + s * (p - c) + r *
perp(p - c)`` (``c`` the image centre; the roll ``r`` is fitted, not reported) that the most cells
agree with wins, tried among "none" (which wins ties), the median shift and the exact fit through
every pair of cells; it is then refitted by least squares on the pixels that agree with it.
Moving objects are outliers of that vote. When no motion is shared by a quarter of the frame's
cells (objects over a flat backdrop, like the shipped demos) the pair counts as static: the
backdrop shows no motion of the camera.

Conventions (image axes: x right, y down):
  * the camera panning right makes the content move left (flow dx < 0): ``pan_right``;
  * the camera tilting up makes the content move down (flow dy > 0): ``tilt_up``;
  * zooming in makes the flow point outward from the centre (s > 0): ``zoom_in``.

Accumulated motion: per-pair motions are divided by ``stride`` (per-frame speed), averaged over
the reliable pairs and multiplied by ``span``, the clip's number of frame intervals
(``num_frames - 1``). ``camera_pan`` is the camera's horizontal displacement over the clip as a
fraction of ``min(height, width)`` (> 0: right), ``camera_tilt`` the vertical one (> 0: up),
``camera_zoom`` the total scale factor ``prod(1 + s)`` (> 1: in; accumulated the same way, in log
scale). Pixels are measured on the downscaled frames; as fractions they equal full-size ones.

Threshold (default 0.2, like Open-Sora's ``--threshold``): a pan (tilt) is reported when
``|camera_pan| >= threshold`` (``|camera_tilt|``), i.e. the camera moved at least
``threshold * min(h, w)`` pixels; a zoom when ``|camera_zoom - 1| >= threshold``. Moves combine
as ``pan_*+tilt_*+zoom_*`` in that order; ``static`` when none passes.

``unclassified`` when the flow cannot be trusted: fewer than half of the pairs have enough texture
(at least 1% of the inner pixels), which includes a uniform (e.g. grey or black) clip; or some axis
is inconsistent: its gross motion (the sum of absolute per-pair moves, accumulated as above)
passes the threshold but its net motion is less than half the gross one, i.e. over a quarter of
the movement goes against the rest (shaking, or a pan that reverses).

CLI (like Open-Sora's tool): ``python -m lavis.pipeline.stages.camera_motion meta.csv
[--threshold 0.2] [--num_workers N] [--output PATH]`` adds a ``cmotion`` column (empty where the
video cannot be read) and writes ``meta_cmotion.csv`` beside ``meta.csv``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import multiprocessing
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lavis.common.io import atomic_open
from lavis.common.log import progress, setup_logging
from lavis.common.registry import registry
from lavis.datasets.video import VideoInfo, open_video
from lavis.pipeline.stages.base import Clip, Stage

logger = logging.getLogger(__name__)

Motion = tuple[float, float, float]  # tx, ty (pixels), s (relative scale change) of one pair
Params = np.ndarray  # (..., 4): tx, ty, s, r of flow(p) = t + s * p + r * perp(p), p from the centre
BORDER = 0.1  # fraction of each side ignored: content enters and leaves there
MIN_TEXTURE = 0.01  # fraction of inner pixels that must be textured for a pair to count
MIN_GRADIENT = 8.0  # 3x3 Sobel magnitude of a textured pixel: about 1 grey level per pixel
GRID = 8  # the inner region is cut into GRID x GRID cells; each cell with texture votes once
MIN_CELL_TEXTURE = 0.05  # fraction of a cell's pixels that must be textured for it to vote
MIN_COVER = 0.25  # fraction of all cells that must share a motion for it to be the camera's
INLIER_PX, INLIER_REL = 0.3, 0.1  # a flow agrees with a motion within 0.3 px + 10% of its size
REFINE_STEPS = 3  # least-squares refits on the agreeing pixels (a slow pan starts from "none")
CONSISTENCY = 0.5  # net motion must be at least this fraction of the gross motion


def predict(params: Params, pos: np.ndarray) -> np.ndarray:
    """Flow (..., N, 2) of the motions ``params`` (..., 4) at centred positions ``pos`` (N, 2)."""
    tx, ty, s, r = (params[..., i, None] for i in range(4))
    x, y = pos[:, 0], pos[:, 1]
    return np.stack([tx + s * x - r * y, ty + s * y + r * x], -1)


def agrees(params: Params, pos: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Which of ``flow`` (N, 2) each motion explains, within INLIER_PX + INLIER_REL of its size."""
    want = predict(params, pos)
    tol = INLIER_PX + INLIER_REL * np.linalg.norm(want, axis=-1)
    return np.linalg.norm(want - flow, axis=-1) <= tol


def textured_flow(gray: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """Centred positions, flow and grid cell of the textured inner pixels, and a cell's area;
    ``None`` if too few. Flat areas are left out: their flow is zero whatever the camera does."""
    h, w = gray.shape
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    by, bx = max(1, int(h * BORDER)), max(1, int(w * BORDER))
    inner = np.hypot(gx, gy)[by : h - by, bx : w - bx] >= MIN_GRADIENT
    if inner.sum() < max(8, MIN_TEXTURE * inner.size):
        return None
    ys, xs = np.nonzero(inner)
    cells = (ys * GRID // inner.shape[0]) * GRID + xs * GRID // inner.shape[1]
    ys, xs = ys + by, xs + bx
    pos = np.stack([xs - (w - 1) / 2, ys - (h - 1) / 2], 1)
    return pos, flow[ys, xs].astype(np.float64), cells, inner.size / GRID**2


def cell_votes(pos: np.ndarray, flow: np.ndarray, cells: np.ndarray,
               cell_area: float) -> tuple[np.ndarray, np.ndarray]:
    """(centre, median flow) of every cell with enough texture: one robust vote per area."""
    counts = np.bincount(cells, minlength=GRID * GRID)
    voting = np.nonzero(counts >= max(3, MIN_CELL_TEXTURE * cell_area))[0]
    order = np.argsort(cells, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    groups = [order[starts[c] : starts[c + 1]] for c in voting]
    centres = np.array([pos[g].mean(0) for g in groups]).reshape(-1, 2)
    medians = np.array([np.median(flow[g], 0) for g in groups]).reshape(-1, 2)
    return centres, medians


def candidates(centres: np.ndarray, medians: np.ndarray) -> Params:
    """Motions to try: none first (ties go to a static camera), the median shift, then the exact
    fit through every pair of cells (two flows fix translation, scale and roll)."""
    i, j = np.triu_indices(len(centres), 1)
    d, f = centres[j] - centres[i], medians[j] - medians[i]
    norm = np.maximum((d**2).sum(1), 1e-9)
    s = (f[:, 0] * d[:, 0] + f[:, 1] * d[:, 1]) / norm
    r = (f[:, 1] * d[:, 0] - f[:, 0] * d[:, 1]) / norm
    tx = medians[i, 0] - s * centres[i, 0] + r * centres[i, 1]
    ty = medians[i, 1] - s * centres[i, 1] - r * centres[i, 0]
    shift = np.median(medians, 0) if len(medians) else np.zeros(2)
    fixed = np.array([[0.0, 0, 0, 0], [shift[0], shift[1], 0, 0]])
    return np.concatenate([fixed, np.stack([tx, ty, s, r], 1)])


def least_squares(pos: np.ndarray, flow: np.ndarray) -> Params:
    """The motion closest to ``flow`` at ``pos`` in the least-squares sense."""
    x, y = pos[:, 0], pos[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    a = np.concatenate([np.stack([ones, zeros, x, -y], 1), np.stack([zeros, ones, y, x], 1)])
    return np.linalg.lstsq(a, np.concatenate([flow[:, 0], flow[:, 1]]), rcond=None)[0]


def dense_flow(prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
    """DIS optical flow (H, W, 2): local patches, so fast objects do not drag the background along
    (Farneback's wide windows did), and about twice as fast as Farneback at 256 px."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # cheap; not shared by threads
    return dis.calc(np.ascontiguousarray(prev_gray), np.ascontiguousarray(next_gray), None)


def pair_motion(prev_gray: np.ndarray, next_gray: np.ndarray) -> Motion | None:
    """The background's translation and scale change (roll is fitted, not reported) between two
    frames; ``None`` when too little is textured. See the module docstring for the method."""
    flow = dense_flow(prev_gray, next_gray)
    textured = textured_flow(prev_gray, flow)
    if textured is None:
        return None
    pos, flow_px, cells, cell_area = textured
    centres, medians = cell_votes(pos, flow_px, cells, cell_area)
    hypotheses = candidates(centres, medians)
    support = agrees(hypotheses, centres, medians).sum(1)
    best = int(np.argmax(support))  # the first of the best: a static camera wins ties
    if support[best] < MIN_COVER * GRID**2:
        return 0.0, 0.0, 0.0  # no motion spans the frame: things moving over a flat backdrop
    params = hypotheses[best]
    for _ in range(REFINE_STEPS):  # least squares on the pixels that agree, as they settle
        inliers = agrees(params, pos, flow_px)
        if inliers.sum() < 8:
            break
        params = least_squares(pos[inliers], flow_px[inliers])
    tx, ty, s, _ = (float(p) for p in params)
    return tx, ty, s


def accumulate(motions: Sequence[Motion | None], height: int, width: int,
               scale: float = 1.0) -> dict[str, Any]:
    """Net and gross (pan, tilt, log zoom) over the clip; ``None`` when too few pairs are reliable.

    ``scale``: clip span / frame intervals covered by the pairs. Pan/tilt are fractions of
    ``min(height, width)`` of the frames the flow ran on, so downscaling does not change them.
    """
    good = [m for m in motions if m is not None]
    side = min(height, width)
    out: dict[str, Any] = {"pairs": len(motions), "reliable": len(good)}
    if not good or len(good) < len(motions) / 2:
        return {**out, "net": None, "gross": None}
    f = scale * len(motions) / len(good)  # extrapolate the reliable pairs to all of them
    pan = np.array([-m[0] / side for m in good])  # content moving left = camera moving right
    tilt = np.array([m[1] / side for m in good])  # content moving down = camera moving up
    zoom = np.log1p(np.maximum(np.array([m[2] for m in good]), -0.99))
    out["net"] = tuple(f * float(v.sum()) for v in (pan, tilt, zoom))
    out["gross"] = tuple(f * float(np.abs(v).sum()) for v in (pan, tilt, zoom))
    return out


def classify(motions: Sequence[Motion | None], height: int, width: int, threshold: float = 0.2,
             scale: float = 1.0) -> str:
    """The label for per-pair ``motions`` (see the module docstring for the rules)."""
    acc = accumulate(motions, height, width, scale)
    if acc["net"] is None:
        return "unclassified"
    names = (("pan_left", "pan_right"), ("tilt_down", "tilt_up"), ("zoom_out", "zoom_in"))
    parts = []
    for axis, (net, gross) in enumerate(zip(acc["net"], acc["gross"])):
        size = math.expm1 if axis == 2 else float  # zoom: |factor - 1|
        if abs(size(gross)) >= threshold and abs(net) < CONSISTENCY * gross:
            return "unclassified"
        if abs(size(net)) >= threshold:
            parts.append(names[axis][net > 0])
    return "+".join(parts) or "static"


def to_gray(frame: np.ndarray, max_side: int) -> np.ndarray:
    """RGB uint8 -> grayscale, shrunk so the long side is at most ``max_side`` (speed)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    k = max_side / max(h, w)
    if k < 1:
        size = (max(8, round(w * k)), max(8, round(h * k)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


def estimate_camera_motion(frames: np.ndarray, threshold: float = 0.2, *, stride: int = 1,
                           span: float | None = None, max_side: int = 256) -> dict[str, Any]:
    """Label and numbers for ``frames`` = (2K, H, W, 3) RGB: pairs (frames[2k], frames[2k+1]).

    ``stride``: frame intervals between the two frames of a pair; ``span``: frame intervals of
    the whole clip (default: those the pairs cover, K * stride).
    """
    if len(frames) < 2 or len(frames) % 2:
        raise ValueError(f"need an even number (>= 2) of frames, got {len(frames)}")
    grays = [to_gray(f, max_side) for f in frames]
    motions = [pair_motion(grays[i], grays[i + 1]) for i in range(0, len(grays), 2)]
    h, w = grays[0].shape
    scale = (span if span is not None else len(motions) * stride) / (len(motions) * stride)
    acc = accumulate(motions, h, w, scale)
    net = acc["net"] or (math.nan, math.nan, math.nan)
    return {"label": classify(motions, h, w, threshold, scale), "pan": net[0], "tilt": net[1],
            "zoom": math.exp(net[2]), "pairs": acc["pairs"], "reliable_pairs": acc["reliable"]}


@registry.register("stage", "camera_motion")
class CameraMotionStage(Stage):
    """``camera_motion`` label plus ``camera_pan``/``camera_tilt``/``camera_zoom`` per clip."""

    name = "camera_motion"

    def __init__(self, threshold: float = 0.2, num_pairs: int = 8, stride: int | None = None,
                 max_side: int = 256) -> None:
        self.threshold, self.num_pairs, self.stride, self.max_side = threshold, num_pairs, stride, max_side

    def pair_stride(self, info: VideoInfo) -> int:
        """Frames between a pair's two frames: ``stride``, or about 0.1 s (clamped to the clip)."""
        stride = self.stride or max(1, round(info.fps / 10) if info.fps > 0 else 1)
        return max(1, min(stride, info.num_frames - 1))

    def select_frames(self, info: VideoInfo) -> list[int]:
        """``[a0, a0 + stride, a1, a1 + stride, ...]``: pair starts spread evenly over the clip."""
        if info.num_frames < 2:
            return []
        stride = self.pair_stride(info)
        last = info.num_frames - 1 - stride
        count = min(self.num_pairs, last + 1)
        starts = [round(i * last / (count - 1)) for i in range(count)] if count > 1 else [0]
        return [i for a in starts for i in (a, a + stride)]

    def process(self, clips: list[Clip]) -> list[dict[str, Any]]:
        return [self.process_one(clip) for clip in clips]

    def process_one(self, clip: Clip) -> dict[str, Any]:
        frames = clip.frames.get(self.name)
        if frames is None or len(frames) < 2 or len(frames) % 2 or clip.info.num_frames < 2:
            return {"error": f"camera_motion needs at least 2 frames, the clip has {clip.info.num_frames}"}
        est = estimate_camera_motion(frames, self.threshold, stride=self.pair_stride(clip.info),
                                     span=clip.info.num_frames - 1, max_side=self.max_side)

        def number(x: float) -> float | None:  # None (JSON null) when the flow was unreliable
            return None if math.isnan(x) else round(x, 4)

        return {"camera_motion": est["label"], "camera_pan": number(est["pan"]),
                "camera_tilt": number(est["tilt"]), "camera_zoom": number(est["zoom"])}


def label_video(path: str, threshold: float = 0.2, num_pairs: int = 8) -> tuple[str, str | None]:
    """(label, None) for one video file, or ("", error message); never raises (CLI workers)."""
    cv2.setNumThreads(1)
    stage = CameraMotionStage(threshold, num_pairs)
    try:
        with open_video(path) as reader:
            indices = stage.select_frames(reader.info)
            frames = reader.get_frames(indices).frames if indices else None
            clip = Clip(id=path, video_id=path, start=None, end=None, info=reader.info,
                        frames={stage.name: frames} if frames is not None else {})
        result = stage.process_one(clip)
    except Exception as err:  # VideoDecodeError, missing files, anything else a broken file raises
        return "", f"{type(err).__name__}: {err}"
    return (result["camera_motion"], None) if "error" not in result else ("", result["error"])


def _label_row(job: tuple[str, float, int]) -> tuple[str, str | None]:
    return label_video(*job)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Label the camera motion of every video in a CSV; "
                                     "writes <name>_cmotion.csv with a 'cmotion' column added.")
    parser.add_argument("meta", type=Path, help="CSV with a 'path' column (relative paths: to the cwd)")
    parser.add_argument("--threshold", type=float, default=0.2, help="fraction of min(h, w); see the doc")
    parser.add_argument("--num_pairs", type=int, default=8)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None, help="default: <meta>_cmotion.csv beside it")
    args = parser.parse_args(argv)
    setup_logging()
    with open(args.meta, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    if "path" not in fields:
        parser.error(f"{args.meta} has no 'path' column (columns: {', '.join(fields)})")
    output = args.output or args.meta.with_name(f"{args.meta.stem}_cmotion.csv")
    jobs = [(row["path"], args.threshold, args.num_pairs) for row in rows]
    pool = multiprocessing.Pool(args.num_workers) if args.num_workers > 1 else None
    try:
        results = pool.imap(_label_row, jobs) if pool else map(_label_row, jobs)  # both keep the order
        for row, (label, error) in zip(rows, progress(results, total=len(jobs), desc="camera motion")):
            row["cmotion"] = label
            if error:
                logger.error("%s: %s", row["path"], error)
    finally:
        if pool:
            pool.terminate()
    with atomic_open(output, "w") as f:
        fieldnames = fields + ["cmotion"] * ("cmotion" not in fields)
        writer = csv.DictWriter(f, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    counts = Counter(row["cmotion"] for row in rows)
    failed = counts.pop("", 0)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    logger.info("camera motion: %d videos, %d labelled (%s), %d failed; wrote %s",
                len(rows), len(rows) - failed, summary, failed, output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
