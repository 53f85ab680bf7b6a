"""Caption annotation files: the LAVIS format in, COCO-format ground truth out.

LAVIS format: a JSON list with one row per caption,
``{"video": "video7010.mp4", "caption": "a man is singing", "image_id": "video7010"}``.
COCO format (what pycocoevalcap's ``COCO`` reads): ``{"images": [{"id"}], "annotations":
[{"image_id", "id", "caption"}], ...}``. Every split's ground truth is written from that split's
own rows (LAVIS scored its test split against the val ground truth; we never do).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lavis.common.io import atomic_write_json

REQUIRED_KEYS = ("video", "caption", "image_id")


class AnnotationError(ValueError):
    """A missing or malformed annotation file; the message names the file and the row."""


def read_caption_annotations(path: str | os.PathLike[str], config_key: str = "") -> list[dict[str, Any]]:
    """Rows of a LAVIS-format caption file, checked for the keys every consumer relies on."""
    path = Path(path)
    if not path.is_file():
        hint = f" (set by '{config_key}')" if config_key else ""
        raise AnnotationError(f"annotation file {path} does not exist{hint}")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{path}: not valid UTF-8 JSON: {err}") from err
    if not isinstance(rows, list):
        raise AnnotationError(f"{path}: expected a JSON list of caption rows")
    for i, row in enumerate(rows):
        missing = [k for k in REQUIRED_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise AnnotationError(f"{path}: row {i} lacks {', '.join(missing)}: {str(row)[:200]}")
        row["image_id"] = str(row["image_id"])
    return rows


def write_caption_annotations(rows: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    atomic_write_json([{k: row[k] for k in REQUIRED_KEYS} for row in rows], path)


def coco_ground_truth(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """COCO-format ground truth from LAVIS-format rows (videos in first-seen order)."""
    images: dict[str, None] = {}
    annotations = []
    for n, row in enumerate(rows):
        video_id = str(row["image_id"])
        images.setdefault(video_id, None)
        annotations.append({"image_id": video_id, "id": n, "caption": row["caption"]})
    return {
        "info": {"description": "caption ground truth"},
        "licenses": [],
        "type": "captions",
        "images": [{"id": video_id} for video_id in images],
        "annotations": annotations,
    }


def write_coco_ground_truth(rows: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    atomic_write_json(coco_ground_truth(rows), path)
