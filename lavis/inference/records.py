"""Append-only JSON-lines result files that survive ``kill -9`` and make reruns resume.

Each rank appends to its own part file and flushes (and fsyncs) after every batch, so a killed
job loses at most the batch in flight. A kill in the middle of a write leaves a partial last
line; it is ignored when reading and cut off before the next append. Records are keyed by the
video's relative path: a caption beats an earlier error for the same video (``--retry_failed``),
so merging never duplicates a video, whichever parts it appears in. A part file has one
writer at a time (``WriterLock``): a second one fails with ``FileBusyError``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lavis.common.io import WriterLock, atomic_write_json

logger = logging.getLogger(__name__)

Record = dict[str, Any]  # {"video": ..., "caption"/"captions": ...} or {"video": ..., "error": ...}


def is_failure(record: Record) -> bool:
    """An error record (batch inference), or one with any stage error (the pipeline)."""
    return "error" in record or bool(record.get("errors"))


class PartFile:
    """One rank's JSON-lines file, locked against other writers, then opened for appending
    after repairing a torn last line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = WriterLock(self.path)
        try:
            _cut_partial_line(self.path)
            self._file = open(self.path, "a", encoding="utf-8")
        except BaseException:
            self._lock.release()
            raise

    def append(self, records: Iterable[Record]) -> None:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if lines:
            self._file.write(lines)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
        self._lock.release()

    def __enter__(self) -> PartFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cut_partial_line(path: Path) -> None:
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    logger.warning("%s: dropping a partial last record (%d bytes) left by an interrupted run", path, len(data) - keep)
    with open(path, "r+b") as f:
        f.truncate(keep)


def read_records(paths: Iterable[Path], key: str = "video") -> dict[str, Record]:
    """The latest word on each item (by ``key``) over all part files: a success wins over an error."""
    best: dict[str, Record] = {}
    for path in sorted(paths):
        for record in _read_lines(path, key):
            old = best.get(record[key])
            if old is None or is_failure(old):  # a success, once written, stays
                best[record[key]] = record
    return best


def _read_lines(path: Path, key: str = "video") -> Iterable[Record]:
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines[:-1], 1):  # the text after the last newline is torn
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON record ({err}); the file was edited or damaged") from err
        if not isinstance(record, dict) or key not in record:
            raise ValueError(f"{path}:{number}: a record needs a {key!r} key")
        yield record


def merge(parts: Iterable[Path], output_file: str | os.PathLike[str], keep: Iterable[str] | None = None) -> list[Record]:
    """Write every video's record once, sorted by path, as one JSON list (atomically); with
    ``keep``, only those videos (records of files since removed from the folder are left out)."""
    wanted = None if keep is None else set(keep)
    records = [r for v, r in sorted(read_records(parts).items()) if wanted is None or v in wanted]
    atomic_write_json(records, output_file)
    return records
