"""Video decoding: frame accuracy on many containers and codecs, for every installed backend."""

import io
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lavis.datasets.video import (
    VideoDecodeError, available_backends, build_frame_sampler, open_video, read_clip,
)
from lavis.datasets.video.base import VideoInfo
from lavis.datasets.video.resize import resize_frames
from tests.videos import (
    cut_by_stream_copy, read_index, truncate, write_audio_only, write_video,
)

VFR_TIMES = [0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.9, 1.0, 1.05, 1.1, 1.6, 1.7, 1.75, 1.8, 2.5, 2.6, 2.65, 2.7]
CASES = {
    "h264.mp4": dict(num_frames=60, options={"g": "12", "bf": "3", "sc_threshold": "0"}),
    "h264.ts": dict(num_frames=60, container_format="mpegts", options={"g": "12", "bf": "2"}),
    "vp9.webm": dict(num_frames=40, codec="libvpx-vp9", options={"g": "10"}),
    "mpeg4.avi": dict(num_frames=40, codec="mpeg4", options={"g": "10", "bf": "2"}),
    "ntsc_bframes.mp4": dict(num_frames=90, fps=30000 / 1001, options={"bf": "3", "g": "30"}),
    "odd_size.mp4": dict(num_frames=20, size=(66, 38), pix_fmt="yuv444p"),
    "odd_size.webm": dict(num_frames=20, size=(65, 37), codec="libvpx-vp9"),
    "one_frame.mp4": dict(num_frames=1),
    "two_frames.mp4": dict(num_frames=2),
    "vfr.mkv": dict(num_frames=len(VFR_TIMES), frame_times=VFR_TIMES),
    "with_audio.mp4": dict(num_frames=30, audio=True),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    out = {name: write_video(root / name, **kw) for name, kw in CASES.items()}
    out["edit_list.mp4"] = root / "edit_list.mp4"
    cut_by_stream_copy(out["h264.mp4"], out["edit_list.mp4"], start_frame=15)
    return out


def true_frames(path: Path) -> list[int]:
    """Every frame's embedded index, by decoding the whole file (the reference)."""
    import av

    with av.open(str(path)) as c:
        return [read_index(f.to_ndarray(format="rgb24")) for f in c.decode(c.streams.video[0])]


def keyframe_positions(path: Path) -> list[int]:
    """Presentation-order index of every keyframe, from the packets."""
    import av

    with av.open(str(path)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.pts is not None and not p.is_discard]
    order = sorted(p.pts for p in packets)
    return [order.index(p.pts) for p in packets if p.is_keyframe]


def seeking_requests(keyframes: list[int], n: int) -> list[list[int]]:
    """One frame at a time, from 3 past each keyframe back down to it (every request is a seek to
    that keyframe and a few frames decoded after it), then random batches."""
    singles = [[i] for k in sorted(keyframes) for i in range(min(k + 3, n - 1), k - 1, -1)]
    rng = np.random.default_rng(0)
    return singles + [sorted(rng.choice(n, min(n, 8), replace=False).tolist()) for _ in range(3)] + [[n - 1, 0, n // 2]]


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("name", [*CASES, "edit_list.mp4"])
def test_frames_returned_are_the_frames_asked_for(videos, name, backend):
    path = videos[name]
    reference = true_frames(path)
    with open_video(path, backend) as reader:
        assert reader.info.num_frames == len(reference)
        n = reader.info.num_frames
        rng = np.random.default_rng(0)
        for indices in ([0], [n - 1], sorted(rng.choice(n, min(n, 8), replace=False).tolist()),
                        [n - 1, 0, n // 2, n // 2], *seeking_requests(keyframe_positions(path), n)):
            got = reader.get_frames(indices)
            assert [read_index(f) for f in got.frames] == [reference[i] for i in indices]
            assert got.frames.dtype == np.uint8 and got.frames.shape[1:] == (
                reader.info.height, reader.info.width, 3)
            assert got.timestamps == [reader.info.timestamps[i] for i in indices]
        red = got.frames[0][-2, reader.info.width // 2]
        assert red[0] > 200 and red[1] < 60 and red[2] < 60  # RGB order, whatever the backend


GOP30 = "keyint=30:min-keyint=30:scenecut=0"
HARD_CASES = {  # decord 0.6 returns frames after the one asked on the first four, cannot open AV1
    "h264_open_gop.mp4": ("libx264", {"x264-params": f"open-gop=1:b-pyramid=normal:bframes=5:{GOP30}"}),
    "h264_intra_refresh.mp4": ("libx264", {"x264-params": "intra-refresh=1:keyint=30:bframes=3"}),
    "h264_intra_refresh_no_b.mp4": ("libx264", {"x264-params": "intra-refresh=1:keyint=30:bframes=0"}),
    "hevc_open_gop.mp4": ("libx265", {"x265-params": f"open-gop=1:bframes=5:{GOP30}:log-level=error"}),
    "hevc_closed_gop.mp4": ("libx265", {"x265-params": f"open-gop=0:bframes=4:{GOP30}:log-level=error"}),
    "av1.mp4": ("libsvtav1", {"g": "30"}),
}


@pytest.fixture(scope="module")
def hard_videos(tmp_path_factory) -> dict[str, Path]:
    """Those of ``HARD_CASES`` whose encoder this PyAV build has."""
    import av

    root = tmp_path_factory.mktemp("hard_videos")
    return {
        name: write_video(root / name, num_frames=90, size=(96, 64), codec=codec, options=options)
        for name, (codec, options) in HARD_CASES.items() if codec in av.codecs_available
    }


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("name", HARD_CASES)
def test_exact_frames_on_open_gop_intra_refresh_and_av1(hard_videos, name, backend):
    if name not in hard_videos:
        pytest.skip(f"this PyAV has no {HARD_CASES[name][0]} encoder")
    path = hard_videos[name]
    reference = true_frames(path)
    with open_video(path, backend) as reader:
        assert reader.info.num_frames == len(reference) == 90
        for indices in seeking_requests(keyframe_positions(path), len(reference)):
            got = reader.get_frames(indices)
            assert [read_index(f) for f in got.frames] == [reference[i] for i in indices], indices


def test_decord_is_still_used_where_its_seeking_is_exact(videos, hard_videos):
    """The trust rule must not hand everything to PyAV: on closed-GOP files decord decodes, and
    every frame asked for alone (a seek each) is right."""
    if "decord" not in available_backends():
        pytest.skip("decord not installed")
    paths = [videos["h264.mp4"], videos["ntsc_bframes.mp4"], videos["vp9.webm"], videos["odd_size.webm"]]
    paths += [hard_videos[name] for name in ("hevc_closed_gop.mp4",) if name in hard_videos]
    for path in paths:
        reference = true_frames(path)
        with open_video(path, "decord") as reader:
            assert reader._trusted, path
            for i in reversed(range(len(reference))):
                assert read_index(reader.get_frames([i]).frames[0]) == reference[i], (path, i)
            assert reader._trusted, path


def rotated_video(root: Path, rotation: int) -> Path:
    return write_video(root / f"rot{rotation}.mp4", num_frames=12, size=(64, 48), rotation=rotation,
                       options={"g": "6", "bf": "2"})


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_videos_come_out_as_players_show_them(tmp_path, rotation):
    """A display matrix turns the picture counter-clockwise; every backend returns the turned
    frames, the same bytes, and ``info`` gives their size."""
    path = rotated_video(tmp_path, rotation)
    turns = rotation // 90
    shown = (64, 48) if turns % 2 else (48, 64)  # (height, width)
    frames = {}
    for backend in available_backends():
        with open_video(path, backend) as reader:
            assert (reader.info.height, reader.info.width) == shown
            got = reader.get_frames([0, 7, 3, 11])
        assert got.frames.shape == (4, *shown, 3)
        assert [read_index(np.rot90(f, -turns)) for f in got.frames] == [0, 7, 3, 11]
        frames[backend] = got.frames
    assert all(np.array_equal(f, frames["pyav"]) for f in frames.values())


@pytest.mark.parametrize("mode", ["shorter", "pad", "stretch"])
@pytest.mark.parametrize("backend", available_backends())
def test_rotated_frames_are_resized_after_turning(tmp_path, backend, mode):
    path = rotated_video(tmp_path, 90)  # shown 48 wide, 64 high
    with open_video(path, backend) as reader:
        full = reader.get_frames([5]).frames
    with open_video(path, backend, size=32, resize_mode=mode) as reader:
        frame = reader.get_frames([5]).frames[0]
    assert frame.shape == (32, 32, 3)
    assert np.abs(frame.astype(int) - resize_frames(full, 32, mode)[0]).mean() < 2  # PyAV scales with swscale
    if mode == "pad":  # portrait: black bars left and right
        assert frame[:, :4].max() == 0 and frame[:, -4:].max() == 0 and frame[:4].max() > 0
    if mode == "stretch":
        assert read_index(np.rot90(frame, -1)) == 5


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command-line tool")
@pytest.mark.parametrize("rotation", [90, 270])
def test_rotation_matches_what_ffmpeg_shows(tmp_path, rotation):
    """ffmpeg turns frames by the display matrix as players do; the reader must agree."""
    path = rotated_video(tmp_path, rotation)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    with open_video(path) as reader:
        frame = reader.get_frames([0]).frames[0]
    shown = np.frombuffer(raw, np.uint8).reshape(frame.shape)
    assert np.abs(frame.astype(int) - shown).mean() < 3


def test_edit_list_cut_starts_at_the_cut(videos):
    with open_video(videos["edit_list.mp4"]) as reader:
        assert reader.info.num_frames == 45 and reader.info.timestamps[0] == 0.0
        assert read_index(reader.get_frames([0]).frames[0]) == 15


def test_timing_of_vfr_and_ntsc(videos):
    with open_video(videos["vfr.mkv"]) as reader:
        assert reader.info.timestamps == pytest.approx(VFR_TIMES)
        got = reader.get_frames_at([0.42, 1.62, 2.9])
        assert [read_index(f) for f in got.frames] == [3, 10, 17]
    with open_video(videos["ntsc_bframes.mp4"]) as reader:
        assert reader.info.fps == pytest.approx(30000 / 1001, rel=1e-6)
        assert reader.info.duration == pytest.approx(90 * 1001 / 30000, rel=1e-6)


def test_seeking_decodes_only_near_the_requested_frames(tmp_path):
    path = write_video(tmp_path / "long.mp4", num_frames=300, options={"g": "12", "sc_threshold": "0"})
    with open_video(path) as reader:
        sampler = build_frame_sampler("uniform")
        indices = sampler(reader.info, 8)
        got = reader.get_frames(indices)
        assert [read_index(f) for f in got.frames] == indices
        assert reader.frames_decoded <= 8 * 12 + 8  # at most one GOP per frame, not 300


@pytest.mark.parametrize("size", [None, 32])
def test_skipping_unreferenced_frames_changes_no_pixel(tmp_path, size):
    """H.264 with B-pyramids: frames no other frame refers to are skipped on the way to a target;
    every frame read must still equal, byte for byte, what decoding the whole file gives."""
    import av
    from av.video.frame import PictureType

    path = write_video(tmp_path / "bpyramid.mp4", num_frames=90, size=(96, 64),
                       options={"g": "30", "bf": "3", "sc_threshold": "0", "x264-params": "b-pyramid=normal"})
    with open_video(path, size=size) as whole:
        reference = whole._decode_sequentially(list(range(whole.info.num_frames)))
    with av.open(str(path)) as container:  # the file really has frames nothing refers to
        kinds = {frame.pict_type for frame in container.decode(video=0)}
    assert PictureType.B in kinds
    rng = np.random.default_rng(1)
    decoded = {}
    for skip in (True, False):
        with open_video(path, size=size) as reader:
            reader._skip_nonref = skip
            for indices in ([0], [1], [89], [29, 31, 58], sorted(rng.choice(90, 8, replace=False).tolist()),
                            build_frame_sampler("uniform")(reader.info, 8)):
                got = reader.get_frames(indices)
                assert all(np.array_equal(f, reference[i]) for f, i in zip(got.frames, indices)), indices
            decoded[skip] = reader.frames_decoded
    assert decoded[True] < decoded[False]  # it did skip


def test_sources_can_be_bytes_or_file_objects(videos):
    data = videos["h264.mp4"].read_bytes()
    for source in (data, io.BytesIO(data)):
        for backend in available_backends():
            with open_video(source, backend) as reader:
                assert read_index(reader.get_frames([33]).frames[0]) == 33


@pytest.mark.parametrize("mode,check", [
    ("shorter", lambda f: f[:, :, 0].mean() > 0),
    ("pad", lambda f: f[:4].max() == 0 and f[-4:].max() == 0),  # 64x48 -> black bars top/bottom
    ("stretch", lambda f: read_index(f) == 5),
])
@pytest.mark.parametrize("backend", available_backends())
def test_resize_modes(videos, mode, check, backend):
    with open_video(videos["h264.mp4"], backend, size=32, resize_mode=mode) as reader:
        frame = reader.get_frames([5]).frames[0]
    assert frame.shape == (32, 32, 3) and check(frame)


def test_bad_inputs_raise_one_clear_error(tmp_path, videos):
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(b"\x00not a video" * 100)
    cases = {
        tmp_path / "missing.mp4": "does not exist",
        tmp_path / "zero.mp4": "empty file",
        tmp_path / "garbage.mp4": "not a readable video container",
        write_audio_only(tmp_path / "audio.m4a"): "no video stream",
        truncate(videos["h264.mp4"], tmp_path / "truncated.mp4", 0.5): "corrupt or truncated",
    }
    for backend in available_backends():
        for path, reason in cases.items():
            with pytest.raises(VideoDecodeError, match=reason) as err:
                open_video(path, backend)
            assert str(path) in str(err.value)
    with open_video(videos["two_frames.mp4"]) as reader:
        with pytest.raises(VideoDecodeError, match="outside the video's 2 frames"):
            reader.get_frames([2])


@pytest.mark.parametrize("backend", available_backends())
def test_a_truncated_faststart_file_lists_only_frames_that_decode_exactly(tmp_path, backend, caplog):
    """The cut falls inside a B-frame's packet: that partial packet and all after it are left
    out, so no FFmpeg build's concealment of it can make a listed frame fail or differ."""
    path = write_video(tmp_path / "fs.mp4", num_frames=60, options={"g": "12"}, faststart=True)
    cut = truncate(path, tmp_path / "cut.mp4", 0.6)
    with caplog.at_level(logging.WARNING), open_video(cut, backend) as reader:
        # decord cannot open it: PyAV reads it instead
        n = reader.info.num_frames
        assert 0 < n < 60
        originals = [round(t * 10) for t in reader.info.timestamps]  # written at 10 fps
        assert originals != list(range(n))  # a frame is missing in the middle, not only at the end
        assert [read_index(f) for f in reader.get_frames([n - 1, 0]).frames] == [originals[-1], 0]
        assert [read_index(f) for f in reader.get_frames(list(range(n))).frames] == originals
    assert "cut short or corrupt" in caplog.text


def test_hanging_decoder_times_out(videos, monkeypatch):
    import time

    from lavis.datasets.video import pyav_reader

    real = pyav_reader.PyAVReader.get_frames
    monkeypatch.setattr(pyav_reader.PyAVReader, "get_frames",
                        lambda self, idx: (time.sleep(5), real(self, idx))[1])
    start = time.time()
    with pytest.raises(VideoDecodeError, match="longer than 0.5 s"):
        read_clip(videos["h264.mp4"], build_frame_sampler("uniform"), 4, timeout=0.5)
    assert time.time() - start < 3


def test_decord_disagreement_falls_back_to_pyav(videos, caplog):
    if "decord" not in available_backends():
        pytest.skip("decord not installed")
    with caplog.at_level(logging.INFO):
        with open_video(videos["edit_list.mp4"], "decord") as reader:
            assert read_index(reader.get_frames([0]).frames[0]) == 15
    assert "reading with PyAV, not decord" in caplog.text


def info(n: int, fps: float = 10.0) -> VideoInfo:
    return VideoInfo(n, fps, n / fps, 64, 48, tuple(i / fps for i in range(n)))


def test_frame_samplers():
    uniform = build_frame_sampler("uniform")
    assert uniform(info(80), 8) == [5, 15, 25, 35, 45, 55, 65, 75]
    assert uniform(info(3), 8) == [0, 0, 0, 1, 1, 2, 2, 2]  # short videos repeat frames
    assert uniform(info(1), 4) == [0, 0, 0, 0]
    rng = np.random.default_rng(0)
    headtail = build_frame_sampler("headtail")
    for n in (1, 2, 5, 100):
        picks = headtail(info(n), 8, rng)
        assert len(picks) == 8 and picks == sorted(picks) and all(0 <= p < n for p in picks)
        if n >= 16:
            assert all(p < n // 2 for p in picks[:4]) and all(p >= n // 2 for p in picks[4:])
    segment = build_frame_sampler("random_segment")
    picks = segment(info(80), 8, rng)
    assert all(10 * i <= p < 10 * (i + 1) for i, p in enumerate(picks))
    assert headtail(info(100), 8, np.random.default_rng(1)) == headtail(info(100), 8, np.random.default_rng(1))
    fps = build_frame_sampler({"name": "fps", "target_fps": 2})
    assert fps(info(50), 0) == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]
    assert fps(info(50), 4) == [0, 15, 30, 45]
    with pytest.raises(Exception, match="did you mean 'uniform'"):
        build_frame_sampler("unifrom")
