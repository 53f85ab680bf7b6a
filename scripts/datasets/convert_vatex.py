"""Convert the official VATEX release to the project's LAVIS-format caption annotations.

Each official file is a JSON list of ``{"videoID": "<youtubeid>_<start>_<end>", "enCap": [10
English captions], "chCap": [...]}``; only ``enCap`` is used, one row per caption, and videos
are ``<videoID>.mp4`` (``--video_ext``). Which official file becomes which split is explicit,
via ``--split_scheme``:

* ``public_test`` (default, needs ``--test``): train = ``vatex_training_v1.0.json`` (25,991
  videos), val = ``vatex_validation_v1.0.json`` (3,000), test = the public test set with the
  English captions released in v1.1, ``vatex_public_test_english_v1.1.json`` (6,000). This is
  the common practice for English captioning (e.g. yangbang18/CLIP-Captioner,
  misc/utils_corpora.py, maps training / validation / public test v1.1 to train / validate /
  test; Salesforce LAVIS's vatex defaults_cap.yaml also keeps val and test annotations apart).
  The private test set has no public captions and cannot be converted.
* ``val_as_test``: for setups without public-test English captions (v1.0 had none, see
  cshizhe/hgr_v2t issue #28), the official validation set serves as the test split and also
  as the val split, as several earlier papers did. val and test are then the same 3,000
  videos, so choosing the checkpoint on val and reporting test is not a held-out result; a
  warning says so.

Output in ``--out``: ``cap_{train,val,test}.json`` (videos sorted by videoID, captions in
``enCap`` order) and ``cap_<split>_gt.json``.

    python scripts/datasets/convert_vatex.py --train vatex_training_v1.0.json \\
        --val vatex_validation_v1.0.json --test vatex_public_test_english_v1.1.json \\
        --out data/vatex/annotations
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common import (
    ConversionError,
    Row,
    check_split_sizes,
    clean_caption,
    read_json,
    run_main,
    video_row,
    write_splits,
)

STANDARD = {
    "public_test": {"train": 25991, "val": 3000, "test": 6000},
    "val_as_test": {"train": 25991, "val": 3000, "test": 3000},
}
log = logging.getLogger("convert")


def read_split(path: Path, what: str) -> tuple[dict[str, list[str]], int]:
    """videoID -> its non-empty English captions (sorted by videoID), and the empty ones dropped."""
    data = read_json(path, what)
    if not isinstance(data, list):
        raise ConversionError(f"{path}: expected a JSON list of videos")
    videos: dict[str, list[str]] = {}
    empty = 0
    for i, row in enumerate(data):
        where = f"{path}: row {i}"
        if not isinstance(row, dict) or not isinstance(row.get("videoID"), str) or not row["videoID"].strip():
            raise ConversionError(f"{where}: expected a 'videoID' string, got {row!r:.200}")
        if not isinstance(row.get("enCap"), list):
            raise ConversionError(
                f"{where}: no 'enCap' list of English captions (a test file without them, e.g. v1.0's, "
                "cannot be converted: use vatex_public_test_english_v1.1.json or --split_scheme val_as_test)"
            )
        video_id = row["videoID"].strip()
        if video_id in videos:
            raise ConversionError(f"{where}: videoID {video_id!r} is listed twice")
        captions = [clean_caption(text, f"{where} enCap[{k}]") for k, text in enumerate(row["enCap"])]
        empty += captions.count("")
        videos[video_id] = [c for c in captions if c]
    return dict(sorted(videos.items())), empty


def convert(files: dict[str, Path | None], scheme: str, out: Path, video_ext: str) -> None:
    if scheme == "public_test" and files["test"] is None:
        raise ConversionError(
            "--split_scheme public_test needs --test (vatex_public_test_english_v1.1.json); "
            "without it pass --split_scheme val_as_test"
        )
    if scheme == "val_as_test" and files["test"] is not None:
        raise ConversionError(
            f"--split_scheme val_as_test uses the validation set as test; drop --test {files['test']}"
        )
    videos: dict[str, dict[str, list[str]]] = {}
    empty = 0
    seen: dict[str, str] = {}  # videoID -> the split it came from, to catch leaks between splits
    for split, path in files.items():
        if path is None:
            continue
        videos[split], dropped = read_split(path, f"--{split}")
        empty += dropped
        for video_id in videos[split]:
            if video_id in seen:
                raise ConversionError(f"{path}: videoID {video_id!r} is also in the {seen[video_id]} file")
            seen[video_id] = split
    if scheme == "val_as_test":
        videos["test"] = videos["val"]
        log.warning(
            "vatex: val and test are the same %d videos (--split_scheme val_as_test)", len(videos["val"])
        )

    rows: dict[str, list[Row]] = {
        split: [video_row(v, caption, video_ext) for v, captions in by_video.items() for caption in captions]
        for split, by_video in videos.items()
    }
    uncaptioned = [v for by_video in videos.values() for v, captions in by_video.items() if not captions]
    if uncaptioned:
        log.warning(
            "vatex: %d videos have no caption and are left out: %s",
            len(uncaptioned),
            ", ".join(uncaptioned[:5]),
        )
    check_split_sizes("vatex", {split: len(v) for split, v in videos.items()}, STANDARD[scheme])
    write_splits("vatex", rows, out, empty)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=Path, required=True, help="vatex_training_v1.0.json")
    parser.add_argument("--val", type=Path, required=True, help="vatex_validation_v1.0.json")
    parser.add_argument(
        "--test", type=Path, help="vatex_public_test_english_v1.1.json (for --split_scheme public_test)"
    )
    parser.add_argument(
        "--split_scheme",
        choices=tuple(STANDARD),
        default="public_test",
        help="which official file is the test split (default: public_test; see above)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for cap_<split>[_gt].json")
    parser.add_argument("--video_ext", default="mp4", help="video file extension (default: mp4)")
    args = parser.parse_args(argv)
    files = {"train": args.train, "val": args.val, "test": args.test}
    return run_main(lambda: convert(files, args.split_scheme, args.out, args.video_ext))


if __name__ == "__main__":
    sys.exit(main())
