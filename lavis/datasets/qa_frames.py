"""Frame-selection QA files (the RoadBuddy layout) and the text a frame selector reads.

A file is ``{"data": [{"id", "question", "choices": [...], "answer", "support_frames":
[seconds, ...], "video_path"}]}``; text may be in any language (read and written as UTF-8).
``video_path`` is relative to a video root given by the caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CAPTION_SETTINGS = {1: "question only", 2: "choices only", 3: "question + choices"}
REQUIRED_KEYS = ("id", "question", "video_path")


@dataclass(frozen=True)
class QASample:
    id: str
    question: str
    choices: tuple[str, ...]
    answer: str | None
    support_frames: tuple[float, ...]  # seconds
    video_path: str  # relative to the video root (or absolute)


def read_qa_file(path: str | Path) -> list[QASample]:
    """Every sample of a QA file; a malformed file or record raises naming the file and record."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"QA file {path} does not exist")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a UTF-8 JSON file: {err}") from err
    records = content.get("data") if isinstance(content, dict) else None
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected {{\"data\": [...]}} at the top level")
    samples, seen = [], set()
    for position, record in enumerate(records):
        samples.append(_sample(record, f"{path}: record {position}"))
        if samples[-1].id in seen:
            raise ValueError(f"{path}: record {position}: duplicate id {samples[-1].id!r}")
        seen.add(samples[-1].id)
    return samples


def _sample(record: Any, where: str) -> QASample:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object, got {type(record).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    support = record.get("support_frames") or []
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t >= 0 for t in support):
        raise ValueError(f"{where}: 'support_frames' must be a list of seconds >= 0, got {support!r}")
    return QASample(
        id=str(record["id"]),
        question=str(record["question"]),
        choices=tuple(str(c) for c in record.get("choices") or ()),
        answer=None if record.get("answer") is None else str(record["answer"]),
        support_frames=tuple(float(t) for t in support),
        video_path=str(record["video_path"]),
    )


def caption_text(sample: QASample, setting: int) -> str:
    """What the selector reads: 1 = question, 2 = choices, 3 = question + choices."""
    if setting not in CAPTION_SETTINGS:
        raise ValueError(f"caption_setting must be one of {sorted(CAPTION_SETTINGS)}, got {setting!r}")
    choices = " ".join(sample.choices)
    if setting == 1 or not choices:
        return sample.question
    return choices if setting == 2 else f"{sample.question} {choices}"


def resolve_video(root: str | Path, video_path: str) -> Path:
    """``video_path`` under ``root``; when not there, under ``root``'s parent (RoadBuddy files name
    videos relative to the dataset root while the JSON sits one folder down)."""
    path = Path(video_path)
    if path.is_absolute():
        return path
    first = Path(root) / path
    if not first.exists() and (Path(root).parent / path).exists():
        return Path(root).parent / path
    return first


def split_by_video(samples: list[QASample], ratio: float, seed: int) -> tuple[list[QASample], list[QASample]]:
    """(train, val): about ``ratio`` of the *videos* go to val, so no video is in both."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio (the validation fraction) must be in [0, 1), got {ratio}")
    videos = sorted({s.video_path for s in samples})
    order = np.random.default_rng(seed).permutation(len(videos))
    held = round(ratio * len(videos))
    val_videos = {videos[i] for i in order[:held]}
    return [s for s in samples if s.video_path not in val_videos], [s for s in samples if s.video_path in val_videos]
