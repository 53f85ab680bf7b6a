"""Video decoding: frame accuracy on many containers and codecs, for every installed backend."""

import io
import logging
from pathlib import Path

import numpy as np
import pytest

from lavis.datasets.video import (
    VideoDecodeError, available_backends, build_frame_sampler, open_video, read_clip,
)
from lavis.datasets.video.base import VideoInfo
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
                        [n - 1, 0, n // 2, n // 2]):
            got = reader.get_frames(indices)
            assert [read_index(f) for f in got.frames] == [reference[i] for i in indices]
            assert got.frames.dtype == np.uint8 and got.frames.shape[1:] == (
                reader.info.height, reader.info.width, 3)
            assert got.timestamps == [reader.info.timestamps[i] for i in indices]
        red = got.frames[0][-2, reader.info.width // 2]
        assert red[0] > 200 and red[1] < 60 and red[2] < 60  # RGB order, whatever the backend


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


def test_truncated_faststart_file_reports_undecodable_frames(tmp_path):
    path = write_video(tmp_path / "fs.mp4", num_frames=60, options={"g": "12"}, faststart=True)
    cut = truncate(path, tmp_path / "cut.mp4", 0.6)
    with open_video(cut) as reader:
        n = reader.info.num_frames
        assert 0 < n < 60
        assert read_index(reader.get_frames([0]).frames[0]) == 0
        with pytest.raises(VideoDecodeError, match="could not be decoded"):
            reader.get_frames([n - 1])


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
    with caplog.at_level(logging.WARNING):
        with open_video(videos["edit_list.mp4"], "decord") as reader:
            assert read_index(reader.get_frames([0]).frames[0]) == 15
    assert "decord counts 48 frames, the stream has 45" in caplog.text


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
