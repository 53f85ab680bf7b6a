"""The synthetic ``shapes`` dataset: real mp4s, LAVIS/COCO annotations, QA that matches the pixels."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest

from lavis.datasets.annotations import read_caption_annotations
from lavis.datasets.synthetic import generate
from lavis.datasets.synthetic.__main__ import main
from lavis.datasets.synthetic.captions import SHAPE_WORDS
from lavis.datasets.synthetic.encode import write_mp4
from lavis.datasets.synthetic.generate import assign_splits
from lavis.datasets.synthetic.render import render_frames
from lavis.datasets.synthetic.scenes import COLOURS, EVENT_ACTIONS, ObjectSpec, Scene

SIZE, FPS, SECONDS = 128, 10, 3.0
NUM_FRAMES = round(FPS * SECONDS)
COLOUR_TOLERANCE = 45.0  # RGB distance; palette colours are >= 90 apart


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes")
    summary = generate(out, num_videos=10, seed=7, qa=12, size=SIZE, fps=FPS, seconds=SECONDS)
    assert summary["videos"] == {"train": 8, "val": 1, "test": 1}
    assert summary["qa_path"] == str(out / "qa" / "frame_selection.json")
    return out


def scenes(root: Path) -> dict[str, dict]:
    return json.loads((root / "scenes.json").read_text())


def decode(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """Frame times (seconds) and RGB frames of an mp4, checking it is a small H.264 video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (SIZE, SIZE)
        decoded = [(frame.time, frame.to_ndarray(format="rgb24")) for frame in container.decode(stream)]
    return [t for t, _ in decoded], [f for _, f in decoded]


def colour_mask(frame: np.ndarray, colour: str) -> np.ndarray:
    distance = np.linalg.norm(frame.astype(np.float32) - np.asarray(COLOURS[colour], np.float32), axis=-1)
    return distance < COLOUR_TOLERANCE


def colour_pixels(frame: np.ndarray, colour: str) -> int:
    return int(colour_mask(frame, colour).sum())


def frame_at(times: list[float], frames: list[np.ndarray], t: float) -> np.ndarray:
    index = int(np.argmin(np.abs(np.asarray(times) - t)))
    assert abs(times[index] - t) < 0.5 / FPS, f"no frame at {t}s"
    return frames[index]


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_videos_decode_with_expected_frames(dataset: Path) -> None:
    for vid, scene in scenes(dataset).items():
        folder = "qa/videos" if scene["split"] == "qa" else "videos"
        times, frames = decode(dataset / folder / f"{vid}.mp4")
        assert len(frames) == NUM_FRAMES
        assert times == pytest.approx([i / FPS for i in range(NUM_FRAMES)])


def test_moving_object_moves_in_the_stated_direction(tmp_path: Path) -> None:
    obj = ObjectSpec("circle", "red", "move_left", (0.7, 0.5), (0.3, 0.5), 0.18, 0.18)
    scene = Scene("shapes_test", NUM_FRAMES, FPS, "black", "blotchy", 3, (obj,))
    write_mp4(tmp_path / "left.mp4", render_frames(scene, SIZE), FPS)
    _, frames = decode(tmp_path / "left.mp4")
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])
    xs = []
    for frame in frames:
        _, cols = np.nonzero(colour_mask(frame, "red"))
        xs.append(cols.mean() / SIZE)
    assert xs[0] == pytest.approx(0.7, abs=0.03) and xs[-1] == pytest.approx(0.3, abs=0.03)
    assert all(b < a for a, b in zip(xs, xs[1:]))


def test_generated_motion_matches_scene(dataset: Path) -> None:
    """Every object's colour is where the scene says, in the first and last frame."""
    for vid, scene in scenes(dataset).items():
        if scene["split"] == "qa":
            continue
        _, frames = decode(dataset / "videos" / f"{vid}.mp4")
        for obj in scene["objects"]:
            if obj["action"] in EVENT_ACTIONS:
                continue
            for frame, (x, y) in ((frames[0], obj["start"]), (frames[-1], obj["end"])):
                rows, cols = np.nonzero(colour_mask(frame, obj["colour"]))
                assert cols.mean() / SIZE == pytest.approx(x, abs=0.04), vid
                assert rows.mean() / SIZE == pytest.approx(y, abs=0.06), vid  # triangles sit off-centre


def test_annotations_and_ground_truth_per_split(dataset: Path) -> None:
    all_scenes = scenes(dataset)
    seen: set[str] = set()
    for split in ("train", "val", "test"):
        rows = read_caption_annotations(dataset / "annotations" / f"cap_{split}.json")
        videos = {row["image_id"] for row in rows}
        assert videos == {vid for vid, s in all_scenes.items() if s["split"] == split}
        assert all(row["video"] == f"{row['image_id']}.mp4" for row in rows)
        assert all((dataset / "videos" / row["video"]).is_file() for row in rows)
        gt = json.loads((dataset / "annotations" / f"cap_{split}_gt.json").read_text())
        assert {image["id"] for image in gt["images"]} == videos
        assert len(gt["annotations"]) == len(rows)
        assert not videos & seen
        seen |= videos
    assert len(seen) == 10


def test_captions_are_several_distinct_and_name_the_shapes(dataset: Path) -> None:
    all_scenes = scenes(dataset)
    by_video: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        for row in read_caption_annotations(dataset / "annotations" / f"cap_{split}.json"):
            by_video.setdefault(row["image_id"], []).append(row["caption"])
    for vid, captions in by_video.items():
        assert len(captions) >= 5 and len(set(captions)) == len(captions), captions
        for caption in captions:
            assert caption == caption.lower() and not caption.endswith(".")
            for obj in all_scenes[vid]["objects"]:
                assert any(word in caption for word in SHAPE_WORDS[obj["shape"]]), (caption, obj)
                direction = obj["action"].removeprefix("move_")
                if direction in ("left", "right"):
                    assert direction in caption, (caption, obj)


def test_same_seed_same_bytes_other_seed_other_content(tmp_path: Path) -> None:
    kwargs = {"num_videos": 4, "qa": 2, "size": SIZE, "fps": FPS, "seconds": 1.0}
    generate(tmp_path / "a", seed=3, **kwargs)
    generate(tmp_path / "b", seed=3, **kwargs)
    generate(tmp_path / "c", seed=4, **kwargs)
    first, again, other = (file_hashes(tmp_path / name) for name in "abc")
    assert len(first) == 4 + 2 + 6 + 1 + 1  # videos, QA videos, annotations, QA file, scenes
    assert first == again
    assert first.keys() == other.keys()
    differing = [name for name in first if first[name] != other[name]]
    assert "scenes.json" in differing and "annotations/cap_train.json" in differing
    assert sum(name.endswith(".mp4") for name in differing) == 6


def test_qa_schema_and_support_frames_show_the_event(dataset: Path) -> None:
    all_scenes = scenes(dataset)
    data = json.loads((dataset / "qa" / "frame_selection.json").read_text())["data"]
    assert len(data) == 12
    kinds = set()
    for item in data:
        assert set(item) == {"id", "question", "choices", "answer", "support_frames", "video_path"}
        assert len(item["choices"]) == 4 and len(set(item["choices"])) == 4
        assert item["answer"] in item["choices"]
        assert item["video_path"] == f"videos/{item['id']}.mp4"
        (obj,) = [o for o in all_scenes[item["id"]]["objects"] if o["action"] in EVENT_ACTIONS]
        kinds.add(obj["action"])
        event_time = obj["event_frame"] / FPS
        assert item["support_frames"] and item["support_frames"][0] == pytest.approx(event_time)
        assert all(0 <= t < SECONDS for t in item["support_frames"])
        answer = item["answer"].split(". ", 1)[1]
        if item["question"].startswith("When"):
            assert answer.startswith("at ") and float(answer.split()[1]) == pytest.approx(event_time)
        elif item["question"].startswith("What color"):
            assert answer == obj["colour_to"]
        else:
            assert answer == obj["shape"]

        times, frames = decode(dataset / "qa" / item["video_path"])
        before = frame_at(times, frames, event_time - 1 / FPS)
        area = (obj["radius_start"] * SIZE) ** 2
        old_colour, new_colour = obj["colour"], obj["colour_to"] or obj["colour"]
        for t in item["support_frames"]:
            after = frame_at(times, frames, t)
            if obj["action"] == "appear":
                assert colour_pixels(before, old_colour) < 0.05 * area
                assert colour_pixels(after, old_colour) > 0.8 * area
            elif obj["action"] == "disappear":
                assert colour_pixels(before, old_colour) > 0.8 * area
                assert colour_pixels(after, old_colour) < 0.05 * area
            else:
                assert colour_pixels(before, old_colour) > 0.8 * area
                assert colour_pixels(before, new_colour) < 0.05 * area
                assert colour_pixels(after, new_colour) > 0.8 * area
                assert colour_pixels(after, old_colour) < 0.05 * area
        # The event is a moment (a sign passing a dashcam): afterwards the old state is back.
        assert obj["event_end"] - obj["event_frame"] >= 3
        if obj["event_end"] < len(frames):
            back = frame_at(times, frames, obj["event_end"] / FPS)
            assert colour_pixels(back, old_colour) == pytest.approx(colour_pixels(before, old_colour), rel=0.3, abs=0.05 * area)
    assert kinds == set(EVENT_ACTIONS)


@pytest.mark.parametrize(
    "num_videos, sizes", [(1, (1, 0, 0)), (3, (1, 1, 1)), (10, (8, 1, 1)), (200, (160, 20, 20))]
)
def test_split_sizes(num_videos: int, sizes: tuple[int, int, int]) -> None:
    splits = assign_splits(num_videos, np.random.default_rng(0))
    assert tuple(splits.count(name) for name in ("train", "val", "test")) == sizes


def test_cli_writes_dataset_and_logs_one_summary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lavis.datasets.synthetic"):
        assert main(["--out", str(tmp_path), "--videos", "3", "--seed", "1", "--seconds", "1"]) == 0
    written = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert written == [f"shapes_{i:06d}.mp4" for i in range(3)]
    assert not (tmp_path / "qa").exists()
    assert "wrote 1/1/1 train/val/test videos" in caplog.records[-1].getMessage()


def test_rejects_odd_frame_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        generate(tmp_path, num_videos=1, seed=0, size=127)
