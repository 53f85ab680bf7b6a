"""Where the pipeline's clips come from: a dataset CSV with ``.tar.gz`` archives, or a path CSV.

Archives are streamed (``tarfile`` mode ``r|gz``: nothing is extracted to disk, nothing is
seeked) and every member is checked before it is read: absolute names, ``..``, links, devices
and anything but a regular file are refused and reported. Members are named
``{video_id} ({start}-{end}).{ext}`` and matched to CSV rows of that video within a tolerance on
start and end; members without a row are reported, and rows never seen are reported at the end.
"""

from __future__ import annotations

import csv
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MEMBER_NAME = re.compile(r"^(?P<video_id>.+) \((?P<start>\d+(?:\.\d*)?)-(?P<end>\d+(?:\.\d*)?)\)\.(?P<ext>[A-Za-z0-9]+)$")
TIME_TOLERANCE = 0.01  # seconds; CSVs and file names round clip bounds differently


@dataclass(frozen=True)
class Row:
    """One clip to process; ``id`` is stable across runs and is what outputs merge by."""

    id: str
    video_id: str
    start: float | None = None
    end: float | None = None
    path: str | None = None  # path CSV: the file; archive mode: None (the bytes come with it)
    fields: tuple[tuple[str, str], ...] = ()  # the CSV row's own columns, carried to the output


def clip_id(video_id: str, start: float, end: float) -> str:
    return f"{video_id} ({start:.3f}-{end:.3f})"


def read_csv_rows(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_dataset_csv(path: str | Path) -> list[Row]:
    """``video_id,start,end,duration`` rows (duration optional)."""
    rows = read_csv_rows(path)
    needed = {"video_id", "start", "end"}
    if rows and not needed <= set(rows[0]):
        raise ValueError(f"{path}: needs columns {sorted(needed)}, has {sorted(rows[0])}")
    out, seen = [], set()
    for number, row in enumerate(rows, 2):
        try:
            start, end = float(row["start"]), float(row["end"])
        except ValueError as err:
            raise ValueError(f"{path}:{number}: start/end must be numbers ({err})") from err
        rid = clip_id(row["video_id"], start, end)
        if rid in seen:
            raise ValueError(f"{path}:{number}: duplicate clip {rid!r}")
        seen.add(rid)
        out.append(Row(rid, row["video_id"], start, end, fields=tuple(row.items())))
    return out


def read_path_csv(path: str | Path) -> list[Row]:
    """Open-Sora style: a ``path`` column (relative paths are relative to the CSV's folder); an
    ``id`` column, when present, is the row id, else the path is."""
    rows = read_csv_rows(path)
    if rows and "path" not in rows[0]:
        raise ValueError(f"{path}: needs a 'path' column, has {sorted(rows[0])}")
    base = Path(path).parent
    out, seen = [], set()
    for number, row in enumerate(rows, 2):
        video = Path(row["path"]).expanduser()
        video = video if video.is_absolute() else base / video
        rid = row.get("id") or row["path"]
        if rid in seen:
            raise ValueError(f"{path}:{number}: duplicate id {rid!r}")
        seen.add(rid)
        out.append(Row(rid, row.get("video_id") or Path(row["path"]).stem, path=str(video), fields=tuple(row.items())))
    return out


@dataclass(frozen=True)
class Refused:
    """An archive member that was not read, and why."""

    archive: str
    member: str
    reason: str


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a member must not be read, or None for a plain file with a safe relative name."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", member.name):
        return "absolute path"
    if ".." in name.parts or "\\" in member.name:
        return "path escapes the archive ('..' or a backslash)"
    if member.issym() or member.islnk():
        return "link"
    if member.isdev() or member.isfifo():
        return "device or fifo"
    if not member.isfile():
        return "not a regular file"
    return None


def iter_archive(path: str | Path) -> Iterator[tuple[str, bytes] | Refused]:
    """Stream ``(member name, bytes)`` of the safe members, ``Refused`` for the others; a
    truncated or corrupt archive ends the stream with a ``Refused`` naming the error."""
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                if member.isdir():
                    continue
                problem = member_problem(member)
                if problem is not None:
                    yield Refused(str(path), member.name, problem)
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    yield Refused(str(path), member.name, "cannot be read")
                    continue
                yield member.name, handle.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        yield Refused(str(path), "", f"archive unreadable from here on: {err}")


def parse_member_name(name: str) -> tuple[str, float, float] | None:
    """``"abc (1.5-4.0).mp4"`` (in any folder of the archive) -> ``("abc", 1.5, 4.0)``."""
    match = MEMBER_NAME.match(PurePosixPath(name).name)
    if match is None:
        return None
    return match["video_id"], float(match["start"]), float(match["end"])


class RowIndex:
    """CSV rows by video id, matched to member names within ``tolerance`` seconds."""

    def __init__(self, rows: list[Row], tolerance: float = TIME_TOLERANCE) -> None:
        self.tolerance = tolerance
        self.by_video: dict[str, list[Row]] = {}
        for row in rows:
            self.by_video.setdefault(row.video_id, []).append(row)

    def match(self, member: str) -> Row | None:
        parsed = parse_member_name(member)
        if parsed is None:
            return None
        video_id, start, end = parsed
        candidates = [
            r for r in self.by_video.get(video_id, [])
            if abs(r.start - start) <= self.tolerance and abs(r.end - end) <= self.tolerance
        ]
        return min(candidates, key=lambda r: abs(r.start - start) + abs(r.end - end)) if candidates else None
