"""Convert the official MSVD (YouTube2Text) release to the project's LAVIS-format annotations.

Descriptions come in one of two official layouts (picked by extension, or ``--format``):

* ``MSR Video Description Corpus.csv``: columns VideoID, Start, End, WorkerID, Source,
  AnnotationTime, Language, Description. It holds captions in many languages; only
  ``Language == English`` rows are kept, as in every English MSVD benchmark.
* ``AllVideoDescriptions.txt``: lines ``<youtubeid>_<start>_<end> <caption>``, ``#`` comments.

``youtube_mapping.txt`` (lines ``<youtubeid>_<start>_<end> vid<N>``) names each clip ``vid<N>``.
The standard split is by N: vid1-1200 train, vid1201-1300 val, vid1301-1970 test. Clips without
a mapping cannot be placed in a split: they are reported (count and first few) and skipped.
Output in ``--out``: ``cap_{train,val,test}.json`` (videos by N, captions in file order) and
``cap_<split>_gt.json``; videos are ``vid<N>.avi`` unless ``--video_ext`` says otherwise.

    python scripts/datasets/convert_msvd.py --descriptions "MSR Video Description Corpus.csv" \\
        --mapping youtube_mapping.txt --out data/msvd/annotations
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from common import (
    ConversionError,
    Row,
    check_split_sizes,
    clean_caption,
    read_lines,
    read_text,
    run_main,
    video_row,
    write_splits,
)

STANDARD = {"train": 1200, "val": 100, "test": 670}
CSV_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")
CLIP_KEY = re.compile(r"^[\w-]+_\d+_\d+$")
log = logging.getLogger("convert")


def split_of(n: int) -> str:
    return "train" if n <= 1200 else "val" if n <= 1300 else "test"


def read_mapping(path: Path) -> dict[str, int]:
    """Clip key -> N of ``vid<N>``; a malformed, duplicate or out-of-range line is an error."""
    mapping: dict[str, int] = {}
    taken: dict[int, str] = {}
    for lineno, line in enumerate(read_lines(path, "--mapping"), 1):
        parts = line.split()
        if not parts:
            continue
        match = re.fullmatch(r"vid(\d+)", parts[-1])
        if len(parts) != 2 or not match or not CLIP_KEY.match(parts[0]):
            raise ConversionError(
                f"{path}:{lineno}: expected '<youtubeid>_<start>_<end> vid<N>', got {line!r}"
            )
        key, n = parts[0], int(match.group(1))
        if not 1 <= n <= 1970:
            raise ConversionError(f"{path}:{lineno}: vid{n} is outside MSVD's vid1-vid1970")
        if key in mapping or n in taken:
            raise ConversionError(f"{path}:{lineno}: {key} or vid{n} is mapped twice")
        mapping[key], taken[n] = n, key
    return mapping


def read_csv(path: Path) -> Iterator[tuple[str, str, str]]:
    """(clip key, caption, where) for every English row of the official CSV."""
    reader = csv.DictReader(io.StringIO(read_text(path, "--descriptions"), newline=""))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConversionError(f"{path}: header lacks column(s) {', '.join(missing)}; got {reader.fieldnames}")
    other_languages = 0
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if any(row[c] is None for c in CSV_COLUMNS):
            raise ConversionError(f"{where}: row has fewer columns than the header")
        if row["Language"].strip() != "English":
            other_languages += 1
            continue
        yield (
            f"{row['VideoID'].strip()}_{row['Start'].strip()}_{row['End'].strip()}",
            row["Description"],
            where,
        )
    log.info("msvd: skipped %d non-English rows of %s", other_languages, path)


def read_txt(path: Path) -> Iterator[tuple[str, str, str]]:
    """(clip key, caption, where) for every description line of AllVideoDescriptions.txt."""
    for lineno, line in enumerate(read_lines(path, "--descriptions"), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, *caption = line.split(None, 1)
        if not CLIP_KEY.match(key):
            raise ConversionError(
                f"{path}:{lineno}: expected '<youtubeid>_<start>_<end> <caption>', got {line!r:.200}"
            )
        yield key, caption[0] if caption else "", f"{path}:{lineno}"


def convert(descriptions: Path, fmt: str, mapping_path: Path, out: Path, video_ext: str) -> None:
    if fmt == "auto":
        fmt = {".csv": "csv", ".txt": "txt"}.get(descriptions.suffix.lower(), "")
        if not fmt:
            raise ConversionError(f"{descriptions}: cannot tell the layout from the extension; pass --format")
    mapping = read_mapping(mapping_path)
    captions: dict[int, list[str]] = defaultdict(list)
    unmapped: dict[str, int] = {}  # clip key -> captions skipped, in first-seen order
    empty = 0
    for key, text, where in (read_csv if fmt == "csv" else read_txt)(descriptions):
        caption = clean_caption(text, where)
        if key not in mapping:
            unmapped[key] = unmapped.get(key, 0) + 1
        elif not caption:
            empty += 1
        else:
            captions[mapping[key]].append(caption)
    if unmapped:
        log.warning(
            "msvd: %d clip keys (%d captions) have no entry in %s and are skipped, e.g. %s",
            len(unmapped),
            sum(unmapped.values()),
            mapping_path,
            ", ".join(list(unmapped)[:5]),
        )

    rows: dict[str, list[Row]] = defaultdict(list)
    for n in sorted(captions):
        rows[split_of(n)] += [video_row(f"vid{n}", caption, video_ext) for caption in captions[n]]
    check_split_sizes(
        "msvd", {split: len({r["image_id"] for r in rows[split]}) for split in STANDARD}, STANDARD
    )
    write_splits("msvd", rows, out, empty)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--descriptions", type=Path, required=True, help="the official CSV or AllVideoDescriptions.txt"
    )
    parser.add_argument(
        "--format",
        choices=("auto", "csv", "txt"),
        default="auto",
        help="layout of --descriptions (default: from its extension)",
    )
    parser.add_argument("--mapping", type=Path, required=True, help="youtube_mapping.txt")
    parser.add_argument("--out", type=Path, required=True, help="output folder for cap_<split>[_gt].json")
    parser.add_argument("--video_ext", default="avi", help="video file extension (default: avi)")
    args = parser.parse_args(argv)
    return run_main(lambda: convert(args.descriptions, args.format, args.mapping, args.out, args.video_ext))


if __name__ == "__main__":
    sys.exit(main())
