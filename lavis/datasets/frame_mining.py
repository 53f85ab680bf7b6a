"""In-video negative mining for a frame selector: per QA sample, its support frames (positives)
and, from each segment of the same video, at most one frame unlike them (a negative).

Negatives come from the same video, so a selector must learn *which moment* answers the
question, not which video it is. A negative is at least ``min_gap`` s from every positive (the
event's neighbours may show it too) and less similar than ``threshold`` to every positive under
an image embedder (a frame that looks like the answer is not a safe negative).

``output_folder``::

    settings.json                  the mining settings, fixed by the first run
    frames_true/<id>/<ms>ms.png    positives, named by their time in milliseconds
    frames_neg/<id>/<ms>ms.png     negatives
    samples/<id>.json              one record per mined sample, written last: it marks it done
    manifest.json                  {"settings", "samples": {id: record}, "errors": {id: message}}

A rerun skips samples with a record, retries the failed ones and refuses other settings.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lavis.common.io import atomic_open, atomic_write_json
from lavis.common.log import progress
from lavis.datasets.qa_frames import QASample, read_qa_file, resolve_video
from lavis.datasets.video import Frames, VideoDecodeError, VideoInfo, call_with_timeout, open_video
from lavis.models.image_embedders import build_embedder

logger = logging.getLogger(__name__)

DECODE_TIMEOUT = 300.0  # seconds for one video's decoding; a hung decoder becomes that sample's error
TIME_EPS = 1e-6  # timestamps come from integer pts times a time base: compare with this slack


class SettingsMismatchError(ValueError):
    """The output folder holds samples mined with other settings; mixing them would be incoherent."""


def mine_negatives(
    input_folder: str | Path,
    output_folder: str | Path,
    *,
    json_path: str | Path | None = None,
    embedder: Mapping[str, Any] | None = None,
    segments: int = 8,
    threshold: float = 0.95,
    min_gap: float = 1.0,
    max_tries: int = 3,
    seed: int = 0,
    frame_size: int | None = None,
    decode_timeout: float | None = DECODE_TIMEOUT,
) -> dict[str, Any]:
    """Mine every sample of the QA file (``embedder`` None = ``{"name": "pixels"}``); returns counts.

    Configuration problems (no/several QA files, other settings, missing weights) raise before
    anything is written; a bad sample only becomes an entry in the manifest's ``errors``.
    """
    started = time.perf_counter()
    source, out = Path(input_folder), Path(output_folder)
    spec = dict(embedder or {"name": "pixels"})
    settings = make_settings(spec, segments, threshold, min_gap, max_tries, seed, frame_size)
    samples = read_qa_file(Path(json_path) if json_path else find_qa_file(source))
    check_settings(out, settings)
    embed = build_embedder(settings["embedder"])
    atomic_write_json(settings, out / "settings.json")  # only once the embedder is known to load

    records: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    mined = skipped = 0
    for sample in progress(samples, desc="mining negatives", unit="sample"):
        try:
            check_id(sample.id)
            record = load_record(out, sample.id)
            if record is None:
                video = resolve_video(source, sample.video_path)
                record = mine_sample(sample, video, out, embed, settings, decode_timeout)
                mined += 1
            else:
                skipped += 1
            records[sample.id] = record
        except Exception as err:  # noqa: BLE001 - one bad sample must not stop the run
            expected = isinstance(err, (VideoDecodeError, ValueError, OSError))
            errors[sample.id] = str(err) if expected else f"{type(err).__name__}: {err}"
            logger.warning("sample %r failed: %s", sample.id, errors[sample.id], exc_info=not expected)

    manifest = out / "manifest.json"
    atomic_write_json({"settings": settings, "samples": records, "errors": errors}, manifest)
    summary = {
        "samples": len(samples), "mined": mined, "skipped": skipped, "errors": len(errors),
        "positives": sum(len(r["positives"]) for r in records.values()),
        "negatives": sum(len(r["negatives"]) for r in records.values()),
        "seconds": round(time.perf_counter() - started, 3), "manifest": str(manifest),
    }
    logger.info(
        "negative mining: %d samples, %d mined, %d skipped as done, %d errors; %d positives and "
        "%d negatives in %s; %.1f s", summary["samples"], mined, skipped, len(errors),
        summary["positives"], summary["negatives"], manifest, summary["seconds"],
    )
    return summary


def make_settings(embedder: dict[str, Any], segments: int, threshold: float, min_gap: float,
                  max_tries: int, seed: int, frame_size: int | None) -> dict[str, Any]:
    """Everything that decides which frames are mined, validated and JSON-normalised."""
    if segments < 1 or max_tries < 1:
        raise ValueError(f"segments and max_tries must be >= 1, got {segments} and {max_tries}")
    if min_gap < 0:
        raise ValueError(f"min_gap must be >= 0 seconds, got {min_gap}")
    if frame_size is not None and frame_size < 1:
        raise ValueError(f"frame_size must be a positive number of pixels or None, got {frame_size}")
    settings = {"embedder": embedder, "segments": segments, "threshold": threshold, "min_gap": min_gap,
                "max_tries": max_tries, "seed": seed, "frame_size": frame_size}
    return json.loads(json.dumps(settings))


def find_qa_file(folder: Path) -> Path:
    """The one ``*.json`` directly inside ``folder`` (several would make the choice a guess)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {folder} does not exist")
    candidates = sorted(p for p in folder.glob("*.json") if p.is_file())
    if len(candidates) != 1:
        names = ", ".join(p.name for p in candidates) or "none"
        raise ValueError(f"{folder}: expected exactly one *.json QA file, found {len(candidates)} ({names}); "
                         f"name one with json_path (--json_path)")
    return candidates[0]


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume a folder mined with other settings (settings.json, else the manifest's)."""
    for name, key in (("settings.json", None), ("manifest.json", "settings")):
        path = out / name
        if not path.is_file():
            continue
        stored = json.loads(path.read_text(encoding="utf-8"))
        stored = stored.get(key) if key else stored
        if stored != settings:
            stored = stored if isinstance(stored, dict) else {}
            changed = [f"{k}: {stored.get(k)!r} there, {settings.get(k)!r} now"
                       for k in sorted(set(stored) | set(settings)) if stored.get(k) != settings.get(k)]
            raise SettingsMismatchError(
                f"{out} was mined with other settings ({'; '.join(changed)}); resume with the same "
                f"settings or write to a new output folder")
        return


def check_id(sample_id: str) -> None:
    """Ids name files and folders: refuse ids that would leave (or be) the output folder."""
    if sample_id in ("", ".", "..") or any(c in sample_id for c in "/\\\0"):
        raise ValueError(f"id {sample_id!r} cannot name a file (empty, '.', '..', or a path separator)")


def load_record(out: Path, sample_id: str) -> dict[str, Any] | None:
    """The sample's record if it was mined already (an unreadable one means: mine it again)."""
    path = out / "samples" / f"{sample_id}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("id") == sample_id else None


def mine_sample(sample: QASample, video: Path, out: Path, embed: Callable[[np.ndarray], torch.Tensor],
                settings: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """Decode, choose and write one sample's frames; its record is written last."""
    if not sample.support_frames:
        raise ValueError(f"{sample.video_path}: no support_frames to mine negatives against")
    # Seeded by the id (not the position), so results do not depend on the samples' order.
    rng = np.random.default_rng([settings["seed"], zlib.crc32(sample.id.encode("utf-8"))])

    def decode() -> tuple[VideoInfo, Frames, list[list[int]], Frames | None]:
        with open_video(video, size=settings["frame_size"]) as reader:
            positives = reader.get_frames_at(list(sample.support_frames))
            check_positives(sample.support_frames, positives, reader.info, str(video))
            pools = candidate_pools(reader.info, positives.timestamps, settings["segments"], settings["min_gap"])
            tries = [[pool[i] for i in rng.permutation(len(pool))[: settings["max_tries"]]] for pool in pools]
            flat = [i for segment in tries for i in segment]
            return reader.info, positives, tries, reader.get_frames(flat) if flat else None

    info, positives, tries, candidates = call_with_timeout(decode, timeout, str(video))
    chosen, too_similar = [], 0
    if candidates is not None:
        vectors = embed(np.concatenate([positives.frames, candidates.frames]))
        count = len(positives.indices)
        similarity = (vectors[count:] @ vectors[:count].T).max(dim=1).values.tolist()
        position = 0
        for segment, indices in enumerate(tries):
            for offset in range(len(indices)):
                if similarity[position + offset] < settings["threshold"]:
                    chosen.append((segment, position + offset))
                    break
                too_similar += 1
            position += len(indices)

    true_dir, neg_dir = out / "frames_true" / sample.id, out / "frames_neg" / sample.id
    for folder in (true_dir, neg_dir):  # a redone sample must not keep frames of an earlier attempt
        for stale in folder.glob("*.png"):
            stale.unlink()
    record: dict[str, Any] = {
        "id": sample.id, "question": sample.question, "video": sample.video_path,
        "duration": round(info.duration, 6), "fps": round(info.fps, 6), "positives": [], "negatives": [],
        "rejected": {"too_similar": too_similar, "segments_too_close": sum(not t for t in tries)},
    }
    shown = zip(sample.support_frames, positives.indices, positives.timestamps, positives.frames)
    for requested, index, t, frame in shown:
        record["positives"].append({"time_requested": requested, "time": round(t, 6), "index": index,
                                    "file": write_png(out, true_dir, t, frame)})
    for segment, j in chosen:
        t = candidates.timestamps[j]
        record["negatives"].append({"time": round(t, 6), "index": candidates.indices[j], "segment": segment,
                                    "file": write_png(out, neg_dir, t, candidates.frames[j]),
                                    "max_similarity": round(similarity[j], 6)})
    atomic_write_json(record, out / "samples" / f"{sample.id}.json")
    return record


def check_positives(requested: tuple[float, ...], frames: Frames, info: VideoInfo, name: str) -> None:
    """Each support time must be on screen in the frame returned for it: from that frame's
    timestamp until the next frame's (annotations rarely fall exactly on frame times)."""
    for t, index in zip(requested, frames.indices):
        if t >= info.duration + TIME_EPS:
            raise ValueError(f"{name}: support frame at {t:g} s is beyond the video's end ({info.duration:g} s)")
        start = info.timestamps[index]
        end = info.timestamps[index + 1] if index + 1 < info.num_frames else info.duration
        if not start - TIME_EPS <= t < end + TIME_EPS:
            raise ValueError(f"{name}: support frame at {t:g} s got the frame shown from {start:g} s to {end:g} s")


def candidate_pools(info: VideoInfo, positive_times: list[float], segments: int,
                    min_gap: float) -> list[list[int]]:
    """Per segment of [0, duration), the indices of its frames at least ``min_gap`` s from every positive."""
    width = info.duration / segments
    pools: list[list[int]] = [[] for _ in range(segments)]
    for index, t in enumerate(info.timestamps):
        if all(abs(t - p) >= min_gap - TIME_EPS for p in positive_times):
            pools[min(int(t / width), segments - 1)].append(index)
    return pools


def write_png(out: Path, folder: Path, seconds: float, frame: np.ndarray) -> str:
    """Write ``<folder>/<ms>ms.png``; returns its path relative to ``out`` (POSIX form)."""
    path = folder / f"{round(seconds * 1000):06d}ms.png"
    with atomic_open(path, "wb") as f:
        Image.fromarray(frame).save(f, format="PNG")
    return path.relative_to(out).as_posix()
