"""Writing the ``shapes`` dataset: videos, LAVIS caption files, COCO ground truth, QA.

Randomness: ``numpy.random.default_rng(seed)`` is split (``spawn``) into one stream for the
caption videos, one for the QA videos and one for the split, and each video gets its own child
stream. Video i therefore depends only on (seed, i): asking for more videos adds videos
without changing the first ones, and the same seed rewrites the same bytes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lavis.common.io import atomic_write_json
from lavis.datasets.annotations import write_caption_annotations, write_coco_ground_truth
from lavis.datasets.synthetic.captions import make_captions
from lavis.datasets.synthetic.encode import write_mp4
from lavis.datasets.synthetic.qa import make_question
from lavis.datasets.synthetic.render import render_frames
from lavis.datasets.synthetic.scenes import sample_scene

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
HELD_OUT_FRACTION = 0.1  # each of val and test
PROGRESS_MIN_VIDEOS = 50  # show a progress bar from this many videos on
QA_FILE = "qa/frame_selection.json"


def generate(
    out_dir: str | os.PathLike[str],
    num_videos: int,
    seed: int,
    qa: int = 0,
    size: int = 128,
    fps: int = 10,
    seconds: float = 3.0,
) -> dict[str, Any]:
    """Write the dataset under ``out_dir`` and return a summary (counts per split, paths).

    Layout: ``videos/<id>.mp4``, ``annotations/cap_<split>.json`` and ``cap_<split>_gt.json``,
    ``scenes.json`` (every scene description, by video id) and, with ``qa``,
    ``qa/frame_selection.json`` with its videos in ``qa/videos/`` (``video_path`` is
    ``videos/<id>.mp4``, relative to the JSON's folder, so ``qa/`` is a self-contained input).
    """
    num_frames = round(fps * seconds)
    _check_arguments(num_videos, qa, size, fps, num_frames)
    started = time.perf_counter()
    out = Path(out_dir)
    video_streams, qa_streams, split_stream = np.random.default_rng(seed).spawn(3)
    splits = assign_splits(num_videos, split_stream)
    logger.info(
        "shapes: writing %d videos (%dx%d, %d frames at %d fps) to %s",
        num_videos, size, size, num_frames, fps, out,
    )

    scenes: dict[str, dict[str, Any]] = {}
    rows: dict[str, list[dict[str, str]]] = {split: [] for split in SPLITS}
    for index, rng in enumerate(_progress(video_streams.spawn(num_videos), "shapes videos")):
        scene = sample_scene(rng, f"shapes_{index:06d}", num_frames, fps)
        split = splits[index]
        video = f"{scene.video_id}.mp4"
        for caption in make_captions(scene, rng):
            rows[split].append({"video": video, "caption": caption, "image_id": scene.video_id})
        write_mp4(out / "videos" / video, render_frames(scene, size), fps)
        scenes[scene.video_id] = {"split": split, **scene.to_dict()}

    annotations, ground_truth = {}, {}
    for split in SPLITS:
        annotations[split] = out / "annotations" / f"cap_{split}.json"
        ground_truth[split] = out / "annotations" / f"cap_{split}_gt.json"
        write_caption_annotations(rows[split], annotations[split])
        write_coco_ground_truth(rows[split], ground_truth[split])

    qa_path = None
    if qa:
        qa_path = out / QA_FILE
        questions = _write_qa(out, qa, qa_streams, size, num_frames, fps, scenes)
        atomic_write_json({"data": questions}, qa_path)
    atomic_write_json(scenes, out / "scenes.json")

    elapsed = time.perf_counter() - started
    return {
        "out_dir": str(out),
        "videos": {split: splits.count(split) for split in SPLITS},
        "captions": {split: len(rows[split]) for split in SPLITS},
        "annotations": {split: str(path) for split, path in annotations.items()},
        "ground_truth": {split: str(path) for split, path in ground_truth.items()},
        "qa": qa,
        "qa_path": str(qa_path) if qa_path else None,
        "scenes": str(out / "scenes.json"),
        "seconds": round(elapsed, 3),
    }


def assign_splits(num_videos: int, rng: np.random.Generator) -> list[str]:
    """Split name per video index: about 80/10/10, at least one video per split from 3 videos."""
    held = max(1, round(HELD_OUT_FRACTION * num_videos)) if num_videos >= 3 else 0
    sizes = {"train": num_videos - 2 * held, "val": held, "test": held}
    names = [split for split in SPLITS for _ in range(sizes[split])]
    order = rng.permutation(num_videos)
    splits = [""] * num_videos
    for position, index in enumerate(order):
        splits[int(index)] = names[position]
    return splits


def _write_qa(
    out: Path,
    count: int,
    streams: np.random.Generator,
    size: int,
    num_frames: int,
    fps: int,
    scenes: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """QA videos (each with one event) and their questions; records the scenes in ``scenes``."""
    logger.info("shapes: writing %d frame-selection questions and their videos", count)
    questions = []
    for index, rng in enumerate(_progress(streams.spawn(count), "shapes QA videos")):
        scene = sample_scene(rng, f"shapes_qa_{index:06d}", num_frames, fps, event=True)
        relative = f"videos/{scene.video_id}.mp4"  # relative to the QA file's folder
        write_mp4(out / Path(QA_FILE).parent / relative, render_frames(scene, size), fps)
        questions.append(make_question(scene, rng, relative))
        scenes[scene.video_id] = {"split": "qa", **scene.to_dict()}
    return questions


def _progress(items: list[np.random.Generator], desc: str) -> tqdm:
    return tqdm(items, desc=desc, unit="video", disable=len(items) < PROGRESS_MIN_VIDEOS)


def _check_arguments(num_videos: int, qa: int, size: int, fps: int, num_frames: int) -> None:
    if num_videos < 0 or qa < 0:
        raise ValueError(f"video and question counts must be >= 0, got {num_videos} and {qa}")
    if size < 32 or size % 2:
        raise ValueError(f"size must be an even number of pixels >= 32, got {size}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    if num_frames < 4:
        raise ValueError(f"fps * seconds must give at least 4 frames, got {num_frames}")
