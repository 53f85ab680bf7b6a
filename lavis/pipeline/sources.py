"""Where the pipeline's clips come from: a dataset CSV with ``.tar.gz`` archives, or a path CSV.

Archives are streamed (read once, front to back, never seeked or extracted in place) and every
member is checked before it is read: absolute names, ``..``, links, devices and anything but a
regular file are refused and reported. A wanted member is copied, a chunk at a time, to a file
of its own in a spool folder, so memory stays bounded whatever the archive holds; one above the
size limit is not read. Members are named ``{video_id} ({start}-{end}).{ext}`` and matched to CSV
rows of that video within a tolerance on start and end; members without a row are reported, and
rows never seen are reported at the end.

A damaged archive is never taken for a shorter, complete one: the decompressor checks its stream
(gzip, bzip2 and xz: truncation, corrupt data, the checksum at the end), and a bad, short or
missing tar header, or data after the end-of-archive marker, is an error too (``tarfile`` alone
would end the archive there quietly). Such an archive ends with ``Unreadable``.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MEMBER_NAME = re.compile(r"^(?P<video_id>.+) \((?P<start>\d+(?:\.\d*)?)-(?P<end>\d+(?:\.\d*)?)\)\.(?P<ext>[A-Za-z0-9]+)$")
TIME_TOLERANCE = 0.01  # seconds; CSVs and file names round clip bounds differently
SPOOL_CHUNK = 1 << 20  # bytes copied at a time from an archive member to its spool file
# what a damaged archive raises, from the file, the decompressor or tarfile
ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class Row:
    """One clip to process; ``id`` is stable across runs and is what outputs merge by."""

    id: str
    video_id: str
    start: float | None = None
    end: float | None = None
    path: str | None = None  # path CSV: the file; archive mode: None (the member comes with it)
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


@dataclass(frozen=True)
class Member:
    """A regular archive member with a safe name: ``path`` is its spooled copy when it was wanted
    and read; else ``path`` is None and ``error`` says why a wanted one was not read (it is None
    for a member that was not wanted)."""

    name: str
    path: Path | None = None
    error: str | None = None


@dataclass(frozen=True)
class Unreadable:
    """The archive's stream failed: no member after this point was reached, and none before it
    can be trusted (a compressed stream's checksum covers it all and is checked at its end)."""

    archive: str
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


def iter_archive(path: str | Path, spool: Path, wanted: Callable[[str], bool] = lambda name: True,
                 max_member_bytes: int | None = None) -> Iterator[Member | Refused | Unreadable]:
    """Every safe regular member as a ``Member`` (spooled into ``spool`` when ``wanted(name)``
    and at most ``max_member_bytes``; the caller removes the file), ``Refused`` for the others;
    a damaged archive ends with ``Unreadable``."""
    try:
        with _decompressed(path) as stream, tarfile.open(fileobj=stream, mode="r|", tarinfo=_StrictTarInfo) as archive:
            for member in archive:
                if member.isdir():
                    continue
                problem = member_problem(member)
                if problem is not None:
                    yield Refused(str(path), member.name, problem)
                elif not wanted(member.name):
                    yield Member(member.name)
                elif max_member_bytes is not None and member.size > max_member_bytes:
                    yield Member(member.name, error=f"archive member of {member.size / 2**20:.1f} MiB, above the limit of "
                                                    f"{max_member_bytes / 2**20:g} MiB (pipeline.max_member_mb): not read")
                else:
                    yield Member(member.name, _spool(archive, member, spool))
            _check_end(archive)
    except ARCHIVE_ERRORS as err:
        yield Unreadable(str(path), str(err) or type(err).__name__)


def _decompressed(path: str | Path) -> BinaryIO:
    """The archive's tar stream through Python's own decompressors, which (unlike tarfile's
    stream mode) raise on a truncated or corrupt stream and check its checksum at the end."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    return open(path, "rb")


class _StrictTarInfo(tarfile.TarInfo):
    """tarfile ends an archive quietly at a bad (checksum), short or missing header after the
    first one; here each of those is an error, so a damaged archive never passes for a complete one."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.EmptyHeaderError as err:
            raise tarfile.ReadError("the archive ends before its end-of-archive marker (truncated?)") from err
        except (tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as err:
            raise tarfile.ReadError(f"bad tar header at byte {tarfile_.offset}: {err}") from err


def _check_end(archive: tarfile.TarFile) -> None:
    """Read the stream to its end (which has the decompressor check the checksum); anything but
    zero padding after the end-of-archive marker is a damaged header read as that marker."""
    while chunk := archive.fileobj.read(SPOOL_CHUNK):
        if chunk.strip(b"\0"):
            raise tarfile.ReadError("data after the end-of-archive marker (a damaged header?)")


def _spool(archive: tarfile.TarFile, member: tarfile.TarInfo, folder: Path) -> Path:
    """A copy of the member in a new file in ``folder``, ``SPOOL_CHUNK`` bytes at a time; a
    stream error on the way removes the partial copy."""
    source = archive.extractfile(member)  # a file: member_problem let only regular files through
    fd, name = tempfile.mkstemp(dir=folder, suffix=PurePosixPath(member.name).suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, SPOOL_CHUNK)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


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
