"""Shared pieces of the dataset converters (``convert_msrvtt.py``, ``convert_msvd.py``, ...).

Every converter reads an official release, builds LAVIS-format rows per split
(``{"video", "caption", "image_id"}``, one row per caption) and hands them to ``write_splits``,
which writes ``cap_<split>.json`` plus the split's own COCO ground truth ``cap_<split>_gt.json``
with the project's atomic helpers and logs one summary line. Problems with the inputs are raised
as ``ConversionError`` naming the file and the row; ``run_main`` turns them into one log line and
exit status 1 instead of a traceback from deep inside ``json`` or ``csv``.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# The scripts are run as files (``python scripts/datasets/convert_msvd.py``), often from a checkout
# without ``pip install -e .``; put the repository root on the path so ``lavis`` imports either way.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lavis.datasets.annotations import write_caption_annotations, write_coco_ground_truth  # noqa: E402

SPLITS = ("train", "val", "test")
Row = dict[str, str]
log = logging.getLogger("convert")


class ConversionError(Exception):
    """A missing or malformed input; the message names the file and the problem."""


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path`` (a BOM is tolerated); ``what`` says which input it is."""
    if not path.is_file():
        raise ConversionError(f"{what} file {path} does not exist")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConversionError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from err


def read_lines(path: Path, what: str) -> list[str]:
    """The lines of ``path``, split only at line ends (``str.splitlines`` also splits at U+2028 etc.)."""
    return [line.rstrip("\n") for line in io.StringIO(read_text(path, what), newline=None)]


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path}: not valid JSON: {err}") from err


def clean_caption(text: Any, where: str) -> str:
    """The caption stripped of surrounding whitespace; ``where`` locates it in error messages."""
    if not isinstance(text, str):
        raise ConversionError(f"{where}: caption is {type(text).__name__}, expected a string: {text!r:.200}")
    return text.strip()


def natural_key(name: str) -> list[Any]:
    """Sort key that puts video2 before video10 (the release's own numbering)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def video_row(video_id: str, caption: str, video_ext: str) -> Row:
    return {"video": f"{video_id}.{video_ext.lstrip('.')}", "caption": caption, "image_id": video_id}


def count_videos(rows: Iterable[Row]) -> int:
    return len({row["image_id"] for row in rows})


def check_split_sizes(dataset: str, videos: dict[str, int], standard: dict[str, int]) -> bool:
    """Warn when the videos per split differ from the standard split; True when they match."""
    if all(videos.get(split, 0) == standard[split] for split in standard):
        return True
    got = " / ".join(f"{split} {videos.get(split, 0)}" for split in standard)
    want = " / ".join(f"{split} {n}" for split, n in standard.items())
    log.warning("%s: videos per split (%s) differ from the standard split (%s)", dataset, got, want)
    return False


def write_splits(
    dataset: str, rows_by_split: dict[str, list[Row]], out_dir: Path, empty_dropped: int
) -> None:
    """Write every split's annotations and COCO ground truth, then log the one-line summary."""
    for split in SPLITS:
        rows = rows_by_split.get(split, [])
        if not rows:
            log.warning("%s: split '%s' has no captions; writing empty files", dataset, split)
        write_caption_annotations(rows, out_dir / f"cap_{split}.json")
        write_coco_ground_truth(rows, out_dir / f"cap_{split}_gt.json")
    per_split = ", ".join(
        f"{split} {count_videos(rows_by_split.get(split, []))} videos / "
        f"{len(rows_by_split.get(split, []))} captions"
        for split in SPLITS
    )
    log.info("%s -> %s: %s; %d empty captions dropped", dataset, out_dir, per_split, empty_dropped)


def run_main(convert: Callable[[], None]) -> int:
    """Run a converter: 0 on success, 1 with a one-line error for bad inputs or I/O failures."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    try:
        convert()
    except ConversionError as err:
        log.error("%s", err)
        return 1
    except OSError as err:
        log.error("%s: %s", err.filename or "I/O error", err.strerror or err)
        return 1
    return 0
