"""The captioning pipeline end to end: archives and CSVs in, one record per clip out.

Covers hostile and broken archive members, damaged archives (each way a stream can fail), the
memory an archive's large member takes, corrupt videos, rows without videos and videos without
rows, kill -9 and resume, two ranks under torchrun, --retry_failed, config errors and datautil's
set operations. Stages: camera_motion and video_caption with the demo model.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from lavis.pipeline.__main__ import main
from lavis.pipeline.outputs import read_table
from tests.conftest import ROOT, subprocess_env
from tests.videos import write_video

CONFIG = ROOT / "lavis" / "projects" / "pipeline" / "demo.yaml"
FAST = ["pipeline.stages.1.num_beams=1", "pipeline.stages.1.n_frames=8"]


def add_bytes(archive: tarfile.TarFile, name: str, data: bytes, kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Path:
    """Three archives: two plain ones (one with a corrupt clip and a clip without a CSV row) and
    one with hostile members; a dataset CSV with one row whose clip is nowhere."""
    root = tmp_path_factory.mktemp("archives")
    clips = {}
    for i in range(6):
        path = write_video(root / f"c{i}.mp4", num_frames=12, fps=10, size=(64, 48))
        clips[f"vid{i}"] = path.read_bytes()
    folder = root / "tars"
    folder.mkdir()
    with tarfile.open(folder / "part_a.tar.gz", "w:gz") as tar:
        for i in range(3):
            add_bytes(tar, f"clips/vid{i} ({i}.5-{i + 2}.25).mp4", clips[f"vid{i}"])
    with tarfile.open(folder / "part_b.tar.gz", "w:gz") as tar:
        add_bytes(tar, "vid3 (0-1.2).mp4", clips["vid3"])
        add_bytes(tar, "vid4 (0.004-1.0).mp4", clips["vid4"])  # within the tolerance of 0.0
        add_bytes(tar, "broken (0-1).mp4", b"\x00\x01 not an mp4" * 50)
        add_bytes(tar, "stray (0-1).mp4", clips["vid0"])  # no CSV row
    with tarfile.open(folder / "part_c.tar.gz", "w:gz") as tar:
        add_bytes(tar, "/etc/vid5 (0-1).mp4", clips["vid5"])
        add_bytes(tar, "../vid5 (0-1).mp4", clips["vid5"])
        add_bytes(tar, "vid5 link (0-1).mp4", b"", tarfile.SYMTYPE, "/etc/passwd")
        add_bytes(tar, "dev (0-1).mp4", b"", tarfile.CHRTYPE)
        add_bytes(tar, "vid5 (0-1).mp4", clips["vid5"])
    rows = [{"video_id": f"vid{i}", "start": f"{i}.5", "end": f"{i + 2}.25", "duration": "1.75"} for i in range(3)]
    rows += [{"video_id": "vid3", "start": "0", "end": "1.2", "duration": "1.2"},
             {"video_id": "vid4", "start": "0.0", "end": "1.0", "duration": "1"},
             {"video_id": "broken", "start": "0", "end": "1", "duration": "1"},
             {"video_id": "vid5", "start": "0", "end": "1", "duration": "1"},
             {"video_id": "ghost", "start": "0", "end": "1", "duration": "1"}]
    write_csv(root / "clips.csv", rows)
    return root


def run_cli(args: list[str], timeout: int = 300, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lavis.pipeline", *args], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout, **popen)


def test_archives_bad_members_corrupt_clips_and_missing_rows(archives, tmp_path):
    out = tmp_path / "meta.csv"
    status = main(["--config", str(CONFIG), "--dataset_csv", str(archives / "clips.csv"), "--tar_folder",
                   str(archives / "tars"), "--output_csv", str(out), "--num_workers", "2", "--batch_size", "2",
                   "--options", *FAST])
    assert status == 1  # a corrupt clip and a row without a video
    rows = read_table(out)
    assert [r["video_id"] for r in rows] == ["vid0", "vid1", "vid2", "vid3", "vid4", "broken", "vid5"]
    by_video = {r["video_id"]: r for r in rows}
    assert "not a readable video" in json.loads(by_video["broken"]["errors"])["decode"]
    for vid in ("vid0", "vid1", "vid2", "vid3", "vid4", "vid5"):
        assert by_video[vid]["caption"] and not by_video[vid]["errors"], by_video[vid]
        assert by_video[vid]["camera_motion"] in ("static", "unclassified") or "_" in by_video[vid]["camera_motion"]
    assert by_video["vid1"]["start"] == "1.5" and by_video["vid1"]["duration"] == "1.75"  # CSV columns kept
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["missing"] == ["ghost (0.000-1.000)"]
    assert report["unmatched_members"] == ["stray (0-1).mp4"]
    reasons = {r["member"]: r["reason"] for r in report["refused_members"]}
    assert set(reasons) == {"/etc/vid5 (0-1).mp4", "../vid5 (0-1).mp4", "vid5 link (0-1).mp4", "dev (0-1).mp4"}
    assert "absolute" in reasons["/etc/vid5 (0-1).mp4"] and "escapes" in reasons["../vid5 (0-1).mp4"]
    assert reasons["vid5 link (0-1).mp4"] == "link" and "device" in reasons["dev (0-1).mp4"]
    jsonl = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["id"] for r in jsonl] == [r["id"] for r in rows]
    import pyarrow.parquet as pq

    table = pq.read_table(out.with_suffix(".parquet")).to_pylist()
    assert [r["id"] for r in table] == [r["id"] for r in rows] and table[0]["caption"] == rows[0]["caption"]
    marker = json.loads((Path(f"{out}.work") / "shards" / "part_a.done.json").read_text())
    assert marker["done"] == 3 and marker["code_version"].startswith("0.1.0") and marker["config_hash"]

    # a rerun finds every shard done and writes the same rows
    again = tmp_path / "again.csv"
    shutil.copytree(f"{out}.work", f"{again}.work")
    assert main(["--config", str(CONFIG), "--dataset_csv", str(archives / "clips.csv"), "--tar_folder",
                 str(archives / "tars"), "--output_csv", str(again), "--options", *FAST]) == 1
    assert again.read_text() == out.read_text()
    assert json.loads(again.with_suffix(".report.json").read_text())["this_run"]["shards_skipped"] == 3

    # two ranks under torchrun: the same rows
    two = tmp_path / "two.csv"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "lavis.pipeline", "--config", str(CONFIG), "--dataset_csv", str(archives / "clips.csv"),
                           "--tar_folder", str(archives / "tars"), "--output_csv", str(two), "--num_workers", "0",
                           "--options", *FAST], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert two.read_text() == out.read_text()


def tar_bytes(clips: dict[str, bytes]) -> tuple[bytes, list[int]]:
    """A plain tar of the clips, and where each member's header starts."""
    buf, starts = io.BytesIO(), []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in clips.items():
            starts.append(tar.offset)
            add_bytes(tar, name, data)
    return buf.getvalue(), starts


def full_flush_gzip(data: bytes, cut: int) -> tuple[bytes, int]:
    """``data`` gzipped with a full flush at ``cut``; the offset of the deflate block after it."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(data[:cut])
        gz.flush(zlib.Z_FULL_FLUSH)
        block = buf.tell()
        gz.write(data[cut:])
    return buf.getvalue(), block


def damage(kind: str, raw: bytes, starts: list[int], clip: bytes) -> tuple[str, bytes, str]:
    """The archive's file name, its damaged bytes, and a phrase of the reason it must be refused for."""
    third, rng = starts[3], np.random.default_rng(0)
    if kind == "bit_rot":  # stored deflate blocks: the flipped byte is read as is, only the CRC at the end tells
        data = bytearray(gzip.compress(raw, compresslevel=0, mtime=0))
        data[data.find(clip[100:132]) + 16] ^= 0xFF
        return "part.tar.gz", bytes(data), "CRC check failed"
    if kind == "zlib":  # an invalid deflate block type where the fourth member starts
        data, block = full_flush_gzip(raw, third)
        return "part.tar.gz", data[:block] + bytes([data[block] | 0b110]) + data[block + 1:], "invalid block type"
    if kind == "truncated_gz":
        data = gzip.compress(raw, mtime=0)
        return "part.tar.gz", data[: len(data) * 2 // 3], "ended before the end-of-stream marker"
    if kind == "garbage_header":
        return "part.tar", raw[:third] + rng.bytes(512) + raw[third + 512:], "bad tar header"
    if kind == "truncated_tar":  # cut where a header would start: tarfile alone takes it for the end
        return "part.tar", raw[:third], "ends before its end-of-archive marker"
    assert kind == "zeroed_header"  # read as the end-of-archive marker, with members after it
    return "part.tar", raw[:third] + bytes(512) + raw[third + 512:], "data after the end-of-archive marker"


@pytest.fixture(scope="module")
def camera_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "camera.yaml"
    path.write_text("pipeline:\n  stages:\n    - {name: camera_motion}\n")
    return path


@pytest.mark.parametrize("kind", ["bit_rot", "zlib", "truncated_gz", "garbage_header", "truncated_tar", "zeroed_header"])
def test_a_damaged_archive_is_unreadable_not_done_and_read_again(kind, camera_config, tmp_path):
    """However the stream fails, the archive is reported unreadable and gets no done marker; the
    clips read from it before the failure showed (a gzip CRC is only checked at the end) are
    failures, not captioned rows; the unreached rows are missing; the next run reads it again."""
    clips = {f"v{i} (0-1).mp4": write_video(tmp_path / f"v{i}.mp4", num_frames=12 + i, fps=10).read_bytes()
             for i in range(6)}
    raw, starts = tar_bytes(clips)
    name, data, reason = damage(kind, raw, starts, clips["v2 (0-1).mp4"])
    folder = tmp_path / "tars"
    folder.mkdir()
    (folder / name).write_bytes(data)
    rows = write_csv(tmp_path / "clips.csv", [{"video_id": f"v{i}", "start": "0", "end": "1"} for i in range(6)])
    out = tmp_path / "meta.csv"
    args = ["--config", str(camera_config), "--dataset_csv", str(rows), "--tar_folder", str(folder),
            "--output_csv", str(out), "--num_workers", "0", "--batch_size", "2"]
    assert main(args) == 1
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert [(a["shard"], reason in a["reason"]) for a in report["unreadable_archives"]] == [("part", True)], report
    shards = Path(f"{out}.work") / "shards"
    assert not (shards / "part.done.json").exists() and (shards / "part.unreadable.json").is_file()
    records = {r["id"]: r for r in read_table(out.with_suffix(".jsonl"))}
    assert all(set(r["errors"]) == {"archive"} and "unreadable" in r["errors"]["archive"] and "camera_motion" not in r
               for r in records.values()), records
    ids = [f"v{i} (0.000-1.000)" for i in range(6)]
    assert sorted(report["missing"]) == [i for i in ids if i not in records]
    if kind == "bit_rot":
        assert sorted(records) == ids  # every clip was read: the damage shows only at the end

    # the archive replaced: the rerun reads it all again, skipping none of the distrusted clips
    for old in folder.iterdir():
        old.unlink()
    (folder / "part.tar.gz").write_bytes(gzip.compress(raw))
    assert main(args) == 0
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["unreadable_archives"] == [] and report["missing"] == [] and report["this_run"]["skipped"] == 0
    assert (shards / "part.done.json").is_file() and not (shards / "part.unreadable.json").exists()
    assert all(r["camera_motion"] and not r.get("errors") for r in read_table(out.with_suffix(".jsonl")))


def test_members_are_spooled_exactly_from_every_compression(tmp_path):
    """gzip, bzip2, xz (told by their content, as tarfile's ``r|*`` did) and plain tar: each wanted
    member's spool file holds its bytes; unwanted ones are not read; a cut stream is unreadable."""
    import bz2
    import lzma

    from lavis.pipeline.sources import Member, Unreadable, iter_archive

    clips = {f"c{i} (0-1).mp4": np.random.default_rng(i).bytes(50_000 + i) for i in range(3)}
    raw, _ = tar_bytes(clips)
    spool = tmp_path / "spool"
    spool.mkdir()
    for compress in (gzip.compress, bz2.compress, lzma.compress, bytes):
        data = compress(raw)
        (tmp_path / "a.tar").write_bytes(data)
        items = list(iter_archive(tmp_path / "a.tar", spool, wanted=lambda name: not name.startswith("c1")))
        assert [(m.name, m.path is not None) for m in items] == [(n, n[1] != "1") for n in clips], compress
        assert all(m.path.read_bytes() == clips[m.name] for m in items if m.path)
        for m in items:
            if m.path is not None:
                m.path.unlink()
        (tmp_path / "a.tar").write_bytes(data[: len(data) // 2])
        *members, last = iter_archive(tmp_path / "a.tar", spool)
        assert isinstance(last, Unreadable) and all(isinstance(m, Member) for m in members), (compress, last)
        for m in members:
            m.path.unlink()
    assert not list(spool.iterdir())  # a member cut short leaves no partial copy


MEMORY_PROBE = """
import json, resource, sys
from lavis.pipeline.__main__ import main
warm, big = json.loads(sys.argv[1])
main(warm)  # imports and the stage's set-up, before measuring
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
status = main(big)
print(json.dumps({"status": status, "before": before, "after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def test_a_large_member_takes_disk_not_memory(camera_config, tmp_path):
    """A 256 MiB zero-filled member (a few hundred KB gzipped) adds next to nothing to the peak
    memory of the rank or of its decoding workers (ru_maxrss, after a warm-up run): members are
    spooled to the work folder a chunk at a time, decoded from there and removed; one above
    ``max_member_mb`` is not read, and its row says why."""
    size = 256 << 20
    clip = write_video(tmp_path / "clip.mp4", num_frames=12, fps=10).read_bytes()
    for name, zeros in (("warm", 1 << 20), ("big", size)):
        (tmp_path / name).mkdir()
        with tarfile.open(tmp_path / name / "part.tar.gz", "w:gz", compresslevel=1) as tar, open("/dev/zero", "rb") as f:
            add_bytes(tar, "clip (0-1).mp4", clip)
            info = tarfile.TarInfo("zeros (0-1).mp4")
            info.size = zeros
            tar.addfile(info, f)
    rows = write_csv(tmp_path / "clips.csv", [{"video_id": v, "start": "0", "end": "1"} for v in ("clip", "zeros")])

    def args(name: str, output: str = "", *extra: str) -> list[str]:
        return ["--config", str(camera_config), "--dataset_csv", str(rows), "--tar_folder", str(tmp_path / name),
                "--output_csv", str(tmp_path / f"{output or name}.csv"), "--num_workers", "1", *extra]

    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, json.dumps([args("warm"), args("big")])], cwd=ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kib = json.loads(proc.stdout.splitlines()[-1])
    assert kib["status"] == 1  # the zeros are not a video
    assert kib["after"] - kib["before"] < 48 << 10, kib  # KiB: well below the member's 256 MiB
    assert kib["workers"] < kib["before"] + (48 << 10), kib
    records = {r["video_id"]: r for r in read_table(tmp_path / "big.jsonl")}
    assert records["clip"]["camera_motion"] and not records["clip"].get("errors")
    assert records["zeros"]["errors"]["decode"].startswith("zeros (0-1).mp4: not a readable video")
    assert "spool" not in records["zeros"]["errors"]["decode"]  # named as in the archive, not by its spool file
    assert not [p for p in (tmp_path / "big.csv.work").iterdir() if p.name.startswith("spool")]

    limited = main(args("big", "limited", "--options", "pipeline.max_member_mb=64"))
    assert limited == 1
    records = {r["video_id"]: r for r in read_table(tmp_path / "limited.jsonl")}
    assert "256.0 MiB, above the limit of 64 MiB (pipeline.max_member_mb)" in records["zeros"]["errors"]["decode"]
    assert records["clip"]["camera_motion"]


def copies(folder: Path, count: int) -> Path:
    """A path CSV of ``count`` distinct files (copies of the demo videos)."""
    folder.mkdir(parents=True, exist_ok=True)
    demo = sorted((ROOT / "lavis" / "demo" / "videos").glob("*.mp4"))
    for i in range(count):
        shutil.copy(demo[i % len(demo)], folder / f"clip{i:03d}.mp4")
    return write_csv(folder / "paths.csv", [{"path": f"clip{i:03d}.mp4"} for i in range(count)])


def test_kill_and_resume_processes_every_row_exactly_once(tmp_path, marked):
    """The kill leaves no process behind: the decode worker, forked by the job, used to wait on
    its task queue for ever once the job was gone."""
    paths = copies(tmp_path / "videos", 24)
    out = tmp_path / "meta.csv"
    args = ["--config", str(CONFIG), "--csv", str(paths), "--output_csv", str(out), "--batch_size", "2",
            "--num_workers", "1", "--options", *FAST, "pipeline.rows_per_shard=8"]
    proc = subprocess.Popen([sys.executable, "-m", "lavis.pipeline", *args], cwd=ROOT, env=marked.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = Path(f"{out}.work") / "shards"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once the second shard has started
        if (shards / "rows_000001.jsonl").is_file() and (shards / "rows_000001.jsonl").stat().st_size > 0:
            break
        time.sleep(0.05)
    assert len(marked.alive()) == 2  # the job and its decode worker
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marked.wait_gone(3) == []
    assert not out.exists() and (shards / "rows_000000.done.json").is_file()
    assert not (shards / "rows_000002.done.json").exists()
    with open(shards / "rows_000001.jsonl", "a") as f:
        f.write('{"id": "clip')  # a record torn by the kill
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = read_table(out)
    assert [r["id"] for r in rows] == [f"clip{i:03d}.mp4" for i in range(24)]
    assert all(r["caption"] for r in rows)
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["this_run"]["shards_skipped"] == 1 and report["this_run"]["skipped"] >= 1
    assert report["this_run"]["done"] + report["this_run"]["skipped"] == 16


def test_killing_torchrun_ends_its_ranks_and_decode_workers_and_a_rerun_does_every_row_once(tmp_path, marked):
    paths = copies(tmp_path / "videos", 24)
    out = tmp_path / "meta.csv"
    args = ["--config", str(CONFIG), "--csv", str(paths), "--output_csv", str(out), "--batch_size", "1",
            "--num_workers", "1", "--options", *FAST, "pipeline.rows_per_shard=4"]
    torchrun = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                 "-m", "lavis.pipeline", *args], cwd=ROOT, env=marked.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    shards = Path(f"{out}.work") / "shards"
    first = [shards / "rows_000000.jsonl", shards / "rows_000001.jsonl"]  # one of each rank
    deadline = time.time() + 120
    while time.time() < deadline and not all(p.is_file() and p.stat().st_size for p in first):
        time.sleep(0.05)
    assert len(marked.alive()) == 5  # torchrun, two ranks, a decode worker each
    os.killpg(torchrun.pid, signal.SIGKILL)
    torchrun.wait()
    assert marked.wait_gone(3) == []
    assert not out.exists() and not (shards / "rows_000005.done.json").exists()
    assert main(args) == 0
    assert [r["id"] for r in read_table(out)] == [f"clip{i:03d}.mp4" for i in range(24)]
    ids = [json.loads(line)["id"] for p in sorted(shards.glob("*.jsonl")) for line in p.read_text().splitlines()]
    assert sorted(ids) == [f"clip{i:03d}.mp4" for i in range(24)]  # no clip processed twice


def test_a_second_job_on_a_work_folder_still_being_written_stops_with_one_line(tmp_path, caplog):
    from lavis.inference.records import PartFile

    paths = copies(tmp_path / "videos", 2)
    out = tmp_path / "meta.csv"
    busy = Path(f"{out}.work") / "shards" / "rows_000000.jsonl"
    with PartFile(busy):  # the job that writes it, still running
        assert main(["--config", str(CONFIG), "--csv", str(paths), "--output_csv", str(out), "--num_workers", "0",
                     "--options", *FAST]) == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and str(busy) in errors[0].getMessage() and "still going" in errors[0].getMessage()
    assert not out.exists()


def test_a_decoder_that_kills_its_process_fails_only_its_clip(tmp_path, monkeypatch):
    """A crash inside FFmpeg (or the OOM killer) takes the worker process down and the process
    pool with it; the job starts a new pool, finds the clip and records it as failed."""
    from lavis.pipeline import decode as decoding

    real = decoding._decode

    def crashing(work, name):  # the forked workers inherit the patch
        if work.row.id == "clip003.mp4":
            os.kill(os.getpid(), signal.SIGKILL)
        return real(work, name)

    monkeypatch.setattr(decoding, "_decode", crashing)
    paths = copies(tmp_path / "videos", 8)
    out = tmp_path / "meta.csv"
    code = main(["--config", str(CONFIG), "--csv", str(paths), "--output_csv", str(out), "--batch_size", "2",
                 "--num_workers", "2", "--options", *FAST])
    assert code == 1
    rows = {r["id"]: r for r in read_table(out.with_suffix(".jsonl"))}
    assert sorted(rows) == [f"clip{i:03d}.mp4" for i in range(8)]
    assert "decoder process died" in rows["clip003.mp4"]["errors"]["decode"]
    assert all(r["caption"] and not r.get("errors") for i, r in rows.items() if i != "clip003.mp4")


def test_retry_failed_and_config_errors(tmp_path):
    paths = copies(tmp_path / "videos", 3)
    good = (tmp_path / "videos" / "clip001.mp4").read_bytes()
    (tmp_path / "videos" / "clip001.mp4").write_bytes(b"broken")
    out = tmp_path / "meta.csv"
    args = ["--config", str(CONFIG), "--csv", str(paths), "--output_csv", str(out), "--num_workers", "0", "--options", *FAST]
    assert main(args) == 1
    (tmp_path / "videos" / "clip001.mp4").write_bytes(good)
    assert main(args) == 1  # without --retry_failed the failure stands
    assert main([*args[:-3], "--retry_failed", *args[-3:]]) == 0
    assert all(r["caption"] and not r.get("errors") for r in read_table(out))

    changed = main(["--config", str(CONFIG), "--csv", str(paths), "--output_csv", str(out), "--options",
                    "pipeline.stages.1.num_beams=2"])
    assert changed == 2  # another config into the same work folder is refused
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline:\n  stages:\n    - {name: camera_motion, treshold: 0.3}\n")
    proc = run_cli(["--config", str(bad), "--csv", str(paths), "--output_csv", str(tmp_path / "x.csv")])
    assert proc.returncode == 2 and "did you mean" in proc.stderr and "threshold" in proc.stderr


def test_datautil_merges_by_id_and_deduplicates(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("datautil", ROOT / "scripts" / "pipeline" / "datautil.py")
    datautil = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(datautil)
    a = write_csv(tmp_path / "a.csv", [{"id": "x", "caption": "a cat"}, {"id": "y", "caption": "a dog"},
                                       {"id": "x", "caption": "a cat, again"}])
    b = tmp_path / "b.jsonl"
    b.write_text('{"id": "y", "camera_motion": "pan_left"}\n{"id": "z", "camera_motion": "static"}\n')
    for op, expected in (("merge", [{"id": "x", "caption": "a cat, again"},
                                    {"id": "y", "caption": "a dog", "camera_motion": "pan_left"},
                                    {"id": "z", "camera_motion": "static"}]),
                         ("difference", [{"id": "x", "caption": "a cat, again"}]),
                         ("intersection", [{"id": "y", "caption": "a dog"}])):
        out = tmp_path / f"{op}.jsonl"
        assert datautil.main([op, str(a), str(b), "--output", str(out)]) == 0
        assert [json.loads(line) for line in out.read_text().splitlines()] == expected
    assert datautil.main(["merge", str(a), str(b), "--output", str(tmp_path / "m.csv")]) == 0
    assert read_table(tmp_path / "m.csv")[1] == {"id": "y", "caption": "a dog", "camera_motion": "pan_left"}
    no_id = write_csv(tmp_path / "no_id.csv", [{"path": "v.mp4"}])
    proc = subprocess.run([sys.executable, "scripts/pipeline/datautil.py", "merge", str(no_id), "--output",
                           str(tmp_path / "m.csv")], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no 'id'" in proc.stderr


def test_video_caption_with_a_transformers_vlm(tmp_path):
    """A tiny random LLaVA through AutoModelForImageTextToText, frames as images (no torchvision
    here for video processors); left padding keeps a clip's caption independent of its batch."""
    from tests.tiny_models import make_tiny_llava

    vlm = make_tiny_llava(tmp_path / "llava")
    paths = copies(tmp_path / "videos", 3)
    config = tmp_path / "vlm.yaml"
    config.write_text(
        "pipeline:\n  stages:\n"
        f"    - {{name: video_caption, backend: hf, path: '{vlm}', input_mode: images, n_frames: 3,\n"
        "       prompt: Describe this video., max_new_tokens: 6, num_beams: 1}\n"
    )
    captions = {}
    for batch in ("1", "3"):
        out = tmp_path / f"b{batch}.csv"
        assert main(["--config", str(config), "--csv", str(paths), "--output_csv", str(out), "--num_workers", "0",
                     "--batch_size", batch]) == 0
        captions[batch] = [r["caption"] for r in read_table(out)]
    assert captions["1"] == captions["3"] and all(isinstance(c, str) for c in captions["1"])
    missing = main(["--config", str(config), "--csv", str(paths), "--output_csv", str(tmp_path / "m.csv"),
                    "--options", f"pipeline.stages.0.path={tmp_path / 'none'}"])
    assert missing == 2

    # the same model describing each clip's middle frame
    image = tmp_path / "image.yaml"
    image.write_text(f"pipeline:\n  stages:\n    - {{name: image_caption, path: '{vlm}', max_new_tokens: 4}}\n")
    out = tmp_path / "image.csv"
    assert main(["--config", str(image), "--csv", str(paths), "--output_csv", str(out), "--num_workers", "0"]) == 0
    assert all(isinstance(r["image_caption"], str) for r in read_table(out.with_suffix(".jsonl")))


def test_audio_caption_with_and_without_an_audio_stream(tmp_path):
    """A tiny random Qwen2-Audio through the auto classes; a clip without audio is not an error."""
    from tests.tiny_models import make_tiny_qwen2_audio

    model = make_tiny_qwen2_audio(tmp_path / "qwen2_audio")
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(3):
        write_video(folder / f"a{i}.mp4", num_frames=10, fps=10, audio=i != 1)
    paths = write_csv(folder / "paths.csv", [{"path": f"a{i}.mp4"} for i in range(3)])
    config = tmp_path / "audio.yaml"
    config.write_text(f"pipeline:\n  stages:\n    - {{name: audio_caption, path: '{model}', max_new_tokens: 5}}\n")
    captions = {}
    for batch in ("1", "3"):
        out = tmp_path / f"b{batch}.jsonl"
        assert main(["--config", str(config), "--csv", str(paths), "--output_csv", str(out.with_suffix(".csv")),
                     "--num_workers", "0", "--batch_size", batch]) == 0
        rows = read_table(out)
        assert [r["has_audio"] for r in rows] == [True, False, True]
        assert rows[1]["audio_caption"] is None and isinstance(rows[0]["audio_caption"], str)
        captions[batch] = [r["audio_caption"] for r in rows]
    assert captions["1"] == captions["3"]  # left padding: batch-mates change nothing


def test_object_detection_on_key_frames(tmp_path):
    """A tiny random Grounding DINO through the auto classes: per key frame, boxes inside the frame
    with a label from the prompt; the clip's own tags win over the configured labels."""
    from lavis.pipeline.stages.object_detection import ObjectDetectionStage, grounding_prompt, mask_to_rle
    from tests.tiny_models import make_tiny_grounding_dino, make_tiny_sam

    detector = make_tiny_grounding_dino(tmp_path / "gdino")
    paths = copies(tmp_path / "videos", 2)
    config = tmp_path / "det.yaml"
    config.write_text(
        "pipeline:\n  stages:\n"
        f"    - {{name: object_detection, path: '{detector}', labels: [red circle, dog], num_frames: 2,\n"
        "       box_threshold: 0.0, text_threshold: 0.0}\n"
    )
    out = tmp_path / "det.csv"
    assert main(["--config", str(config), "--csv", str(paths), "--output_csv", str(out), "--num_workers", "0"]) == 0
    for row in read_table(out.with_suffix(".jsonl")):
        frames = row["detections"]
        assert len(frames) == 2 and frames[0]["time"] < frames[1]["time"]
        for frame in frames:
            assert frame["boxes"] and len(frame["boxes"]) == len(frame["labels"]) == len(frame["scores"])
            assert all(0 <= x0 <= x1 <= 128 and 0 <= y0 <= y1 <= 128 for x0, y0, x1, y1 in frame["boxes"])  # 128 px clips
            assert all(any(word in label for word in ("red", "circle", "dog")) for label in frame["labels"] if label)

    # boxes refined to masks by a tiny random SAM: one RLE per box, decoding to the reported area
    sam = make_tiny_sam(tmp_path / "sam")
    masked = tmp_path / "masked.csv"
    assert main(["--config", str(config), "--csv", str(paths), "--output_csv", str(masked), "--num_workers", "0",
                 "--options", f"pipeline.stages.0.sam_path={sam}"]) == 0
    frame = read_table(masked.with_suffix(".jsonl"))[0]["detections"][0]
    assert len(frame["masks"]) == len(frame["boxes"]) == len(frame["mask_areas"])
    for rle, area in zip(frame["masks"], frame["mask_areas"]):
        assert rle["size"] == [128, 128] and sum(rle["counts"]) == 128 * 128 and sum(rle["counts"][1::2]) == area
    square = np.zeros((4, 5), bool)
    square[1:3, 2:4] = True
    assert mask_to_rle(square) == {"size": [4, 5], "counts": [9, 2, 2, 2, 5]}
    assert mask_to_rle(np.ones((2, 2), bool))["counts"] == [0, 4]

    assert grounding_prompt(["Red Circle", "dog.", " "]) == "red circle. dog."
    stage = ObjectDetectionStage(labels=["dog"])
    from lavis.pipeline.stages.base import Clip
    clip = Clip("c", "c", None, None, info=None, fields={"objects": ["cat", "ball"]})
    assert stage.clip_labels(clip) == ["cat", "ball"]
    assert ObjectDetectionStage(labels=[]).process([Clip("d", "d", None, None, info=None)])[0]["error"].startswith("no labels")


def test_pllava_checkpoint_through_the_llava_classes(tmp_path):
    """A PLLaVA-format folder (model_type pllava, pooling_shape) loads through LLaVA's classes; the
    pooling projector turns 4 frames of 2x2 patches into 2 tokens, and batching changes nothing."""
    import torch

    from lavis.pipeline.stages.pllava import VideoPoolingProjector
    from tests.tiny_models import make_tiny_llava

    folder = make_tiny_llava(tmp_path / "pllava")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="pllava", architectures=["PllavaForConditionalGeneration"], pooling_shape=[2, 1, 1],
                  frame_shape=[2, 2], num_frames=4, use_pooling=True)
    (folder / "config.json").write_text(json.dumps(config))

    pool = VideoPoolingProjector(torch.nn.Identity(), num_frames=4, frame_shape=(2, 2), pooling_shape=(2, 1, 1))
    features = torch.arange(2 * 4 * 4 * 3, dtype=torch.float32).view(8, 4, 3)  # 2 videos x 4 frames, 2x2 patches
    pooled = pool(features)
    assert pooled.shape == (2, 2, 3)
    assert torch.allclose(pooled[0, 0], features[:2].reshape(-1, 3).mean(0))  # frames 0-1, all patches

    paths = copies(tmp_path / "videos", 3)
    yaml_path = tmp_path / "pllava.yaml"
    yaml_path.write_text(
        "pipeline:\n  stages:\n"
        f"    - {{name: video_caption, backend: pllava, path: '{folder}', n_frames: 4, max_new_tokens: 5, num_beams: 1}}\n"
    )
    captions = {}
    for batch in ("1", "3"):
        out = tmp_path / f"p{batch}.csv"
        assert main(["--config", str(yaml_path), "--csv", str(paths), "--output_csv", str(out), "--num_workers", "0",
                     "--batch_size", batch]) == 0
        captions[batch] = [r["caption"] for r in read_table(out.with_suffix(".jsonl"))]
    assert captions["1"] == captions["3"]
    wrong = main(["--config", str(yaml_path), "--csv", str(paths), "--output_csv", str(tmp_path / "w.csv"),
                  "--num_workers", "0", "--options", "pipeline.stages.0.pooling_shape=[2,1]"])
    assert wrong == 2
