"""Convert the official MSR-VTT release to the project's LAVIS-format caption annotations.

Input: ``train_val_videodatainfo.json`` and ``test_videodatainfo.json``, each
``{"videos": [{"video_id": "video0", "split": "train"|"validate"|"test", ...}],
"sentences": [{"caption", "video_id", "sen_id"}]}``. The split comes from each video's own
``split`` field (``validate`` -> ``val``), which gives the standard 6513 / 497 / 2990 videos;
other counts are logged as a warning because published MSR-VTT numbers assume that split.
Output in ``--out``: ``cap_{train,val,test}.json`` (one row per caption, videos in their
numeric order, captions by ``sen_id``) and ``cap_<split>_gt.json`` (COCO ground truth).

    python scripts/datasets/convert_msrvtt.py --train_val train_val_videodatainfo.json \\
        --test test_videodatainfo.json --out data/msrvtt/annotations
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import (
    ConversionError,
    Row,
    check_split_sizes,
    clean_caption,
    natural_key,
    read_json,
    run_main,
    video_row,
    write_splits,
)

STANDARD = {"train": 6513, "val": 497, "test": 2990}
SPLIT_NAMES = {"train": "train", "validate": "val", "val": "val", "test": "test"}
log = logging.getLogger("convert")


def field(row: Any, key: str, kind: type, where: str) -> Any:
    """``row[key]`` checked to be a ``kind``, or an error that points at the row."""
    if not isinstance(row, dict) or not isinstance(row.get(key), kind):
        raise ConversionError(f"{where}: expected a '{key}' {kind.__name__}, got {row!r:.200}")
    return row[key]


def read_release(path: Path, what: str) -> tuple[list[Any], list[Any]]:
    data = read_json(path, what)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("videos", "sentences")):
        raise ConversionError(f"{path}: expected an object with 'videos' and 'sentences' lists")
    return data["videos"], data["sentences"]


def convert(train_val: Path, test: Path, out: Path, video_ext: str) -> None:
    split_of: dict[str, str] = {}  # video_id -> our split
    captions: dict[str, list[tuple[int, str]]] = defaultdict(list)  # video_id -> (sen_id, caption)
    sentences: list[tuple[Path, int, Any]] = []
    for path, what in ((train_val, "--train_val"), (test, "--test")):
        videos, sents = read_release(path, what)
        for i, video in enumerate(videos):
            where = f"{path}: videos[{i}]"
            video_id = field(video, "video_id", str, where)
            split = SPLIT_NAMES.get(field(video, "split", str, where))
            if split is None:
                raise ConversionError(
                    f"{where}: unknown split {video['split']!r} (expected train, validate or test)"
                )
            if video_id in split_of:
                raise ConversionError(f"{where}: video_id {video_id!r} is listed twice")
            split_of[video_id] = split
        sentences += [(path, i, sentence) for i, sentence in enumerate(sents)]

    empty = 0
    for path, i, sentence in sentences:
        where = f"{path}: sentences[{i}]"
        video_id = field(sentence, "video_id", str, where)
        sen_id = field(sentence, "sen_id", int, where)
        caption = clean_caption(field(sentence, "caption", str, where), where)
        if video_id not in split_of:
            raise ConversionError(f"{where}: video_id {video_id!r} is not under 'videos' in either file")
        if not caption:
            empty += 1
            continue
        captions[video_id].append((sen_id, caption))

    videos_per_split = {split: sum(s == split for s in split_of.values()) for split in STANDARD}
    check_split_sizes("msrvtt", videos_per_split, STANDARD)
    uncaptioned = sorted((v for v in split_of if v not in captions), key=natural_key)
    if uncaptioned:
        log.warning(
            "msrvtt: %d videos have no caption and are left out: %s",
            len(uncaptioned),
            ", ".join(uncaptioned[:5]),
        )

    rows: dict[str, list[Row]] = defaultdict(list)
    for video_id in sorted(captions, key=natural_key):
        for _, caption in sorted(captions[video_id], key=lambda c: c[0]):
            rows[split_of[video_id]].append(video_row(video_id, caption, video_ext))
    write_splits("msrvtt", rows, out, empty)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train_val", type=Path, required=True, help="train_val_videodatainfo.json")
    parser.add_argument("--test", type=Path, required=True, help="test_videodatainfo.json")
    parser.add_argument("--out", type=Path, required=True, help="output folder for cap_<split>[_gt].json")
    parser.add_argument("--video_ext", default="mp4", help="video file extension (default: mp4)")
    args = parser.parse_args(argv)
    return run_main(lambda: convert(args.train_val, args.test, args.out, args.video_ext))


if __name__ == "__main__":
    sys.exit(main())
