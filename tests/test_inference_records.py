"""The resumable result files and the video-folder listing behind batch inference."""

import json
import os
import subprocess
import sys
import time

import pytest

from lavis.common.io import FileBusyError, check_no_writer
from lavis.inference.records import PartFile, merge, read_records
from lavis.inference.video_folder import list_videos
from tests.conftest import ROOT


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path):
    part = tmp_path / "rank00000.jsonl"
    with PartFile(part) as f:
        f.append([{"video": "a.mp4", "caption": "one"}, {"video": "b.mp4", "caption": "two"}])
    with open(part, "a", encoding="utf-8") as f:
        f.write('{"video": "c.mp4", "capt')  # what kill -9 in the middle of a write leaves
    assert sorted(read_records([part])) == ["a.mp4", "b.mp4"]
    with PartFile(part) as f:
        f.append([{"video": "c.mp4", "caption": "three"}])
    lines = part.read_text().splitlines()
    assert [json.loads(line)["video"] for line in lines] == ["a.mp4", "b.mp4", "c.mp4"]


def test_a_caption_beats_an_error_and_every_video_is_merged_once(tmp_path):
    first, second = tmp_path / "rank00000.jsonl", tmp_path / "rank00001.jsonl"
    with PartFile(first) as f:
        f.append([{"video": "a.mp4", "error": "corrupt"}, {"video": "b.mp4", "caption": "kept"}])
    with PartFile(second) as f:  # a later run (other world size) retried a.mp4, and b.mp4 again
        f.append([{"video": "a.mp4", "caption": "fixed"}, {"video": "b.mp4", "error": "late failure"}])
    merged = merge([first, second], tmp_path / "out.json")
    assert merged == [{"video": "a.mp4", "caption": "fixed"}, {"video": "b.mp4", "caption": "kept"}]
    assert json.loads((tmp_path / "out.json").read_text()) == merged


def test_a_damaged_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    part = tmp_path / "rank00000.jsonl"
    part.write_text('{"video": "a.mp4", "caption": "x"}\nnot json\n{"video": "b.mp4", "caption": "y"}\n')
    with pytest.raises(ValueError, match="rank00000.jsonl:2"):
        read_records([part])


def test_list_videos_filters_extensions_case_insensitively_and_skips_hidden(tmp_path):
    for name in ["b.mp4", "a.MP4", "sub/c.webm", "notes.txt", ".hidden.mp4", ".cache/d.mp4"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert list_videos(tmp_path, "mp4") == ["a.MP4", "b.mp4"]
    assert list_videos(tmp_path, "mp4, .webm") == ["a.MP4", "b.mp4", "sub/c.webm"]
    with pytest.raises(FileNotFoundError, match="not a folder"):
        list_videos(tmp_path / "missing", "mp4")


HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("io_", "lavis/common/io.py")  # not all of lavis: fast
io_ = importlib.util.module_from_spec(spec)
spec.loader.exec_module(io_)
lock = io_.WriterLock(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_a_part_file_has_one_writer_and_a_dead_writer_leaves_no_lock(tmp_path, marked):
    part = tmp_path / "rank00000.jsonl"
    with PartFile(part) as first:
        first.append([{"video": "a.mp4", "caption": "one"}])
        with pytest.raises(FileBusyError) as refused:
            PartFile(part)
        message = str(refused.value)
        assert str(part) in message and f"pid {os.getpid()}" in message and "then rerun" in message
        with pytest.raises(FileBusyError):
            check_no_writer(part)
    check_no_writer(part)  # released on close
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(part)], cwd=ROOT, env=marked.env,
                              stdout=subprocess.PIPE, text=True)  # a writer killed while it holds the file
    assert holder.stdout.readline() == "locked\n"
    with pytest.raises(FileBusyError, match=f"pid {holder.pid}"):
        PartFile(part)
    holder.kill()
    holder.wait()
    with PartFile(part) as again:
        again.append([{"video": "b.mp4", "caption": "two"}])
    assert sorted(read_records([part])) == ["a.mp4", "b.mp4"]


EXITING_HOLDER = """
import importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location("io_", "lavis/common/io.py")
io_ = importlib.util.module_from_spec(spec)
spec.loader.exec_module(io_)
lock = io_.WriterLock(sys.argv[1])  # records this pid as the holder
if os.fork() == 0:  # what outlives a killed holder for a moment: its last threads, here a fork
    time.sleep(0.5)
    os._exit(0)
print("locked", flush=True)
os._exit(0)
"""


def test_a_holder_that_died_a_moment_ago_is_waited_for_and_a_live_one_refused_at_once(tmp_path, monkeypatch):
    part = tmp_path / "rank00000.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", EXITING_HOLDER, str(part)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    holder.wait()  # the recorded holder is gone; its lock goes within half a second
    with PartFile(part) as f:
        f.append([{"video": "a.mp4", "caption": "one"}])
        monkeypatch.setattr("lavis.common.io.EXIT_GRACE_S", 600.0)
        started = time.monotonic()
        with pytest.raises(FileBusyError):  # this process is alive: no waiting for it
            check_no_writer(part)
        assert time.monotonic() - started < 60
