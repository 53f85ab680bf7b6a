"""The pipeline job: shards in, one record per clip out, resumable at any moment.

A shard is one archive (dataset CSV + tar folder) or ``rows_per_shard`` rows of a path CSV;
data-parallel group g takes shards g, g + groups, ... (a group is one rank, or the ``tp_size``
ranks that split large models between them; only its first rank writes). Each shard appends its records to
``<work_dir>/shards/<shard>.jsonl`` after every batch (fsynced; a torn last line is cut on the
next open) and, when complete, writes ``<shard>.done.json`` (counts, config hash, code
version, refused and unmatched archive members). A rerun skips done shards and, in a partial
one, the clips already recorded (failed ones too, unless ``retry_failed``); it refuses to start
while another process still writes a shard file (one writer each: ``WriterLock``). Rank 0 then
merges all shards by id into the outputs (``outputs.py``) and reports the CSV rows never seen.
Ranks and their decoding workers end with their launcher (``lavis.common.lifetime``).

Archive members are spooled to files in ``<work_dir>/spool.rank<r>`` and removed once decoded.
An archive whose stream turns out damaged gets no done marker but ``<shard>.unreadable.json``;
its records are rewritten as failures (``errors: {archive: ...}``: their bytes came from a
stream that failed its checks), its unreached rows stay missing, and the next run reads it again.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lavis
from lavis.common import dist
from lavis.common.io import FileBusyError, atomic_write_json, check_no_writer
from lavis.common.log import progress
from lavis.common.dist import resolve_device
from lavis.inference.records import PartFile, Record, is_failure, read_records
from lavis.pipeline import decode as decoding
from lavis.pipeline.config import PipelineConfig
from lavis.pipeline.outputs import write_jsonl
from lavis.pipeline.parallel import Layout
from lavis.pipeline.sources import Refused, Row, RowIndex, Unreadable, iter_archive
from lavis.pipeline.stages.base import Clip, Stage, build_stage

logger = logging.getLogger(__name__)
ARCHIVE_ERROR = "archive"  # the errors key of a clip read from an archive found damaged: always redone


@dataclass
class Shard:
    name: str
    archive: Path | None = None  # archive mode
    rows: list[Row] = field(default_factory=list)  # path mode: the shard's rows


@dataclass
class ShardLog:
    """What one pass over a shard found besides its records, for its report."""

    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0, "skipped": 0})
    refused: list[dict[str, str]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    unreadable: str | None = None  # why the archive's stream failed


def plan_shards(rows: list[Row], tar_folder: str | Path | None, rows_per_shard: int) -> list[Shard]:
    """Archives (sorted by name) or consecutive slices of the path rows; the same on every rank."""
    if tar_folder is not None:
        folder = Path(tar_folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"tar folder {folder} does not exist")
        archives = sorted(p for p in folder.iterdir() if p.name.endswith((".tar.gz", ".tgz", ".tar")))
        if not archives:
            raise FileNotFoundError(f"no .tar.gz/.tgz/.tar archives in {folder}")
        return [Shard(p.name.split(".tar")[0].removesuffix(".tgz"), archive=p) for p in archives]
    return [Shard(f"rows_{i // rows_per_shard:06d}", rows=rows[i : i + rows_per_shard])
            for i in range(0, len(rows), rows_per_shard)]


@functools.cache
def code_version() -> str:
    """The package version, plus the git commit when running from a checkout (for done markers)."""
    version = getattr(lavis, "__version__", "0")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(lavis.__file__).parent,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+{commit.stdout.strip()}" if commit.returncode == 0 and commit.stdout.strip() else version


class PipelineJob:
    def __init__(self, config: PipelineConfig, rows: list[Row], work_dir: str | Path, *, tar_folder: str | None = None,
                 batch_size: int = 4, num_workers: int = 2, retry_failed: bool = False, layout: Layout | None = None) -> None:
        self.config, self.rows, self.work_dir = config, rows, Path(work_dir)
        self.shards = plan_shards(rows, tar_folder, config.rows_per_shard)
        self.index = RowIndex(rows, config.tolerance)
        self.by_id = {row.id: row for row in rows}
        self.batch_size, self.num_workers, self.retry_failed = batch_size, num_workers, retry_failed
        self.rank = dist.get_rank()
        self.layout = layout or Layout(self.rank, 1, self.rank, dist.get_world_size())
        self.stages: list[Stage] = []
        self.config_hash = config.config_hash()
        self.spool = self.work_dir / f"spool.rank{self.rank}"

    # ------------------------------------------------------------------ running
    def run(self) -> dict[str, Any]:
        """This rank's shards; returns its counts (``done``, ``failed``, ``skipped``, ...)."""
        started = time.time()
        self.check_markers()
        self.check_writers()
        layout = self.layout
        mine = [s for i, s in enumerate(self.shards) if i % layout.num_groups == layout.group]
        todo = [s for s in mine if not self._is_done(s)]
        counts = {"shards": len(mine), "shards_skipped": len(mine) - len(todo), "done": 0, "failed": 0, "skipped": 0}
        if todo:
            device = resolve_device(self.config.device)
            self.stages = [build_stage(spec) for spec in self.config.stages]
            decoding.init_worker(self.config.stages)  # inline decoding (num_workers=0) uses them too
            with self._spool_folder(), self._pool() as pool:
                for stage in self.stages:
                    stage.setup(device, layout.tp_mesh)
                for shard in todo:
                    for key, value in self._run_shard(shard, pool).items():
                        counts[key] += value
        counts["seconds"] = round(time.time() - started, 2)
        if not layout.writer:  # the group's writer reports the clips it and this rank did together
            counts.update({k: 0 for k in ("shards", "shards_skipped", "done", "failed", "skipped")})
        return counts

    @contextmanager
    def _spool_folder(self) -> Iterator[None]:
        """An empty folder for this rank's spooled archive members (a killed run's left-overs
        removed), removed again at the end."""
        shutil.rmtree(self.spool, ignore_errors=True)
        self.spool.mkdir(parents=True)
        try:
            yield
        finally:
            shutil.rmtree(self.spool, ignore_errors=True)

    def _pool(self) -> _DecodePool | _Inline:
        if self.num_workers <= 0:
            return _Inline()
        return _DecodePool(self.num_workers, self.config.stages)

    def _run_shard(self, shard: Shard, pool) -> dict[str, int]:
        part_path = self._part(shard)
        finished: set[str] | None = None
        if self.layout.writer:
            previous = read_records([part_path], key="id") if part_path.is_file() else {}
            finished = {rid for rid, r in previous.items() if self._settled(r)}
        if self.layout.tp_size > 1:  # the group must agree on the clips to do, before its writer writes
            finished = dist.broadcast_object(finished, src=self.layout.leader, group=self.layout.tp_group)
        log = ShardLog()
        work = self._work(shard, finished, log)
        bar = progress(desc=f"shard {shard.name}", unit="clip", rank=self.rank)
        with (PartFile(part_path) if self.layout.writer else _NoWriter()) as part:
            for batch in _batches(self._decoded(work, pool), self.batch_size):
                records = self._process(batch)
                part.append(records)
                for record in records:
                    log.counts["failed" if is_failure(record) else "done"] += 1
                bar.update(len(records))
        bar.close()
        if not self.layout.writer:
            return log.counts
        for item in log.refused:
            logger.warning("%s: refused archive member %r: %s", shard.name, item["member"], item["reason"])
        if log.unmatched:
            logger.warning("%s: %d archive members have no CSV row (e.g. %r)", shard.name, len(log.unmatched), log.unmatched[0])
        if log.unreadable is not None:
            self._distrust(shard, log)
        else:
            self._write_report(shard, log, self._marker(shard))
            self._unreadable_report(shard).unlink(missing_ok=True)
        return log.counts

    def _settled(self, record: Record) -> bool:
        """Whether this run leaves a recorded clip alone: not one read from an archive found
        damaged (always redone), nor a failure under ``retry_failed``."""
        if ARCHIVE_ERROR in (record.get("errors") or {}):
            return False
        return not (self.retry_failed and is_failure(record))

    def _distrust(self, shard: Shard, log: ShardLog) -> None:
        """The archive's stream failed its checks: every clip recorded from it, in this run or an
        earlier one, came from that stream (a gzip checksum covers all of it, checked only at its
        end), so its record is rewritten as a failure; no done marker, so the next run reads the
        archive again."""
        part_path = self._part(shard)
        records = read_records([part_path], key="id") if part_path.is_file() else {}
        logger.error("%s: archive %s is unreadable (%s); the %d clips read from it are marked failed, the rest are "
                     "missing; the next run reads it again", shard.name, shard.archive, log.unreadable, len(records))
        reason = (f"archive {shard.archive.name} is unreadable ({log.unreadable}); "
                  "this clip was read from it before that was found and is not trusted")
        write_jsonl([{**self._row_fields(rid), "errors": {ARCHIVE_ERROR: reason}} for rid in records], part_path)
        log.counts["failed"] += log.counts["done"]
        log.counts["done"] = 0
        self._write_report(shard, log, self._unreadable_report(shard))

    def _row_fields(self, rid: str) -> dict[str, Any]:
        row = self.by_id.get(rid)
        return row_fields(row) if row is not None else {"id": rid}

    def _write_report(self, shard: Shard, log: ShardLog, path: Path) -> None:
        unreadable = {"archive": str(shard.archive), "unreadable": log.unreadable} if log.unreadable is not None else {}
        atomic_write_json({"shard": shard.name, "config_hash": self.config_hash, "code_version": code_version(),
                           **log.counts, "refused": log.refused, "unmatched": log.unmatched, **unreadable}, path)

    def _work(self, shard: Shard, finished: set[str], log: ShardLog) -> Iterator[decoding.Work]:
        """The shard's clips still to do, from its rows or streamed from its archive (only the
        members to do are read, each into a spool file)."""
        if shard.archive is None:
            for row in shard.rows:
                if row.id in finished:
                    log.counts["skipped"] += 1
                else:
                    yield decoding.Work(row)
            return

        def wanted(name: str) -> bool:
            row = self.index.match(name)
            return row is not None and row.id not in finished

        limit = round(self.config.max_member_mb * 2**20)
        for item in iter_archive(shard.archive, self.spool, wanted, limit):
            if isinstance(item, Unreadable):
                log.unreadable = item.reason
            elif isinstance(item, Refused):
                log.refused.append({"member": item.member, "reason": item.reason})
            elif (row := self.index.match(item.name)) is None:
                log.unmatched.append(item.name)
            elif row.id in finished:
                log.counts["skipped"] += 1
            else:
                yield decoding.Work(row, item.path, item.name, item.error)

    def _decoded(self, work: Iterator[decoding.Work], pool) -> Iterator[Clip | tuple[Row, str]]:
        """Decode ahead in the pool (at most ``2 * workers + batch`` clips in flight), in order."""
        ahead = max(1, 2 * self.num_workers + self.batch_size)
        pending: deque[tuple[decoding.Work, Future]] = deque()
        for item in work:
            pending.append((item, pool.submit(decoding.decode, item, self.config.decode_timeout)))
            if len(pending) >= ahead:
                yield self._next_decoded(pending, pool)
        while pending:
            yield self._next_decoded(pending, pool)

    def _next_decoded(self, pending: deque[tuple[decoding.Work, Future]], pool) -> Clip | tuple[Row, str]:
        """The oldest clip in flight, its spooled file removed."""
        work = pending[0][0]
        try:
            return self._oldest_result(pending, pool)
        finally:
            work.discard()

    def _oldest_result(self, pending: deque[tuple[decoding.Work, Future]], pool) -> Clip | tuple[Row, str]:
        """The oldest clip's decoding. A decoder that kills its worker process (a crash in FFmpeg,
        the OOM killer) breaks the whole pool and every clip in flight with it: start a new
        pool, decode those clips again one at a time to find the culprit, record it as failed."""
        item, future = pending.popleft()
        try:
            return future.result()
        except BrokenProcessPool:
            logger.warning("a decoder process died; retrying the %d clips in flight one at a time", 1 + len(pending))
        retry = [item, *(work for work, _ in pending)]
        pending.clear()
        pool.restart()
        for work in retry:
            done: Future = Future()
            try:
                done.set_result(pool.submit(decoding.decode, work, self.config.decode_timeout).result())
            except BrokenProcessPool:
                done.set_result((work.row, "the decoder process died on this clip (crash or out of memory)"))
                pool.restart()
            pending.append((work, done))
        return pending.popleft()[1].result()

    def _process(self, batch: list[Clip | tuple[Row, str]]) -> list[Record]:
        """Every stage over the decodable clips; one record per clip, errors per stage."""
        clips = [c for c in batch if isinstance(c, Clip)]
        outputs: dict[str, dict[str, Any]] = {c.id: {} for c in clips}
        errors: dict[str, dict[str, str]] = {c.id: {} for c in clips}
        for stage in self.stages:
            try:
                results = stage.process(clips) if clips else []
                if len(results) != len(clips):
                    raise RuntimeError(f"returned {len(results)} results for {len(clips)} clips")
            except Exception as err:  # noqa: BLE001 - one stage failing must not lose the others' fields
                logger.exception("stage %s failed on a batch of %d clips", stage.name, len(clips))
                results = [{"error": f"{type(err).__name__}: {err}"}] * len(clips)
            for clip, result in zip(clips, results):
                result = dict(result)
                if "error" in result:
                    errors[clip.id][stage.name] = str(result.pop("error"))
                outputs[clip.id].update(result)
                clip.fields.update(result)  # later stages may build on it
        records = []
        for item in batch:
            if isinstance(item, Clip):
                record = {**row_fields(self.by_id[item.id]), **outputs[item.id]}
                if errors[item.id]:
                    record["errors"] = errors[item.id]
            else:
                row, reason = item
                logger.warning("cannot decode %s: %s", row.id, reason)
                record = {**row_fields(row), "errors": {"decode": reason}}
            records.append(record)
        return records

    # ------------------------------------------------------------------ shard files
    def _part(self, shard: Shard) -> Path:
        return self.work_dir / "shards" / f"{shard.name}.jsonl"

    def _marker(self, shard: Shard) -> Path:
        return self.work_dir / "shards" / f"{shard.name}.done.json"

    def _unreadable_report(self, shard: Shard) -> Path:
        """The report of a shard whose archive was found damaged (it has no done marker)."""
        return self.work_dir / "shards" / f"{shard.name}.unreadable.json"

    def check_markers(self) -> None:
        """Refuse a work folder whose finished shards came from another pipeline config (checked
        over all shards, so every rank reaches the same verdict)."""
        for shard in self.shards:
            marker = self._marker(shard)
            if marker.is_file():
                found = json.loads(marker.read_text(encoding="utf-8")).get("config_hash")
                if found != self.config_hash:
                    raise ValueError(
                        f"{marker} was written with another pipeline config (hash {found}, now {self.config_hash}); "
                        f"use a new output folder, or delete {self.work_dir / 'shards'} to start over"
                    )

    def check_writers(self) -> None:
        """Refuse to start while another process still writes one of the shard files (a run
        still going on the same work folder); rank 0 looks, so every rank gets its verdict."""
        busy = None
        if self.rank == 0:
            try:
                for shard in self.shards:
                    check_no_writer(self._part(shard))
            except FileBusyError as err:
                busy = str(err)
        busy = dist.broadcast_object(busy)
        if busy:
            raise FileBusyError(busy)

    def _is_done(self, shard: Shard) -> bool:
        marker = self._marker(shard)
        if not marker.is_file():
            return False
        return not (self.retry_failed and json.loads(marker.read_text(encoding="utf-8")).get("failed"))

    def shard_reports(self) -> list[dict[str, Any]]:
        """Each shard's done marker, or the report of its last pass that found the archive damaged."""
        reports = []
        for shard in self.shards:
            found = [p for p in (self._marker(shard), self._unreadable_report(shard)) if p.is_file()]
            if found:
                reports.append(json.loads(found[0].read_text(encoding="utf-8")))
        return reports

    def all_records(self) -> dict[str, Record]:
        return read_records([self._part(s) for s in self.shards if self._part(s).is_file()], key="id")


def row_fields(row: Row) -> dict[str, Any]:
    """The record's leading fields: id, video id, clip bounds, then the CSV row's own columns."""
    fields: dict[str, Any] = {"id": row.id, "video_id": row.video_id, "start": row.start, "end": row.end}
    if row.path is not None:
        fields["path"] = row.path
    for key, value in row.fields:
        fields.setdefault(key, value)
    return fields


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _NoWriter:
    """The part file of a tensor-parallel rank that is not its group's writer: writes nothing."""

    def append(self, records: list[Record]) -> None:
        pass

    def __enter__(self) -> _NoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _DecodePool:
    """Decoding worker processes (forked, each with the stages' frame selection), replaced
    whole when one of them dies."""

    def __init__(self, workers: int, stage_specs: list[dict[str, Any]]) -> None:
        self.workers, self.stage_specs = workers, stage_specs
        self.executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=decoding.start_worker, initargs=(self.stage_specs, os.getpid()))

    def submit(self, fn, *args) -> Future:
        """The call's future; one that fails with ``BrokenProcessPool`` when a worker has died."""
        try:
            return self.executor.submit(fn, *args)
        except BrokenProcessPool as err:
            broken: Future = Future()
            broken.set_exception(err)
            return broken

    def restart(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.executor = self._start()

    def __enter__(self) -> _DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class _Inline:
    """A stand-in for the process pool that decodes in this process (``num_workers=0``)."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
