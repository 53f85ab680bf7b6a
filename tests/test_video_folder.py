"""Decoding a folder for batch inference: videos one per worker task, batches put together in order."""

from __future__ import annotations

import pytest
import torch

from lavis.inference.video_folder import VideoFolder, batched, video_loader
from lavis.processors.video_processors import VideoEvalProcessor
from tests.videos import write_video


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> VideoFolder:
    root = tmp_path_factory.mktemp("folder")
    names = []
    for i in range(7):
        write_video(root / f"v{i}.mp4", num_frames=10 + i)
        names.append(f"v{i}.mp4")
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    names.insert(3, "broken.mp4")
    return VideoFolder(root, names, VideoEvalProcessor(image_size=32, n_frms=2))


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers", [0, 2])
def test_batches_keep_order_and_sizes_and_carry_failures(folder, workers):
    batches = list(batched(video_loader(folder, batch_size=3, workers=workers), 3))
    assert [len(b["decoded"]) + len(b["failed"]) for b in batches] == [3, 3, 2]
    order = [item["video"] for b in batches for item in sorted(b["decoded"] + b["failed"],
                                                               key=lambda x: folder.names.index(x["video"]))]
    assert order == folder.names
    failed = [item for b in batches for item in b["failed"]]
    assert [f["video"] for f in failed] == ["broken.mp4"] and "VideoDecodeError" in failed[0]["error"]
    second = batches[1]  # broken.mp4 is its first item: pixels hold only the decoded ones
    assert second["pixels"].shape == (2, 2, 3, 32, 32)
    for k, item in enumerate(second["decoded"]):
        expected, _ = folder.processor(str(folder.root / item["video"]))
        assert torch.equal(second["pixels"][k], expected)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_loader_keeps_two_batches_in_flight_and_batched_checks_its_size(folder):
    assert video_loader(folder, batch_size=64, workers=14).prefetch_factor == 10  # 140 videos ahead
    assert video_loader(folder, batch_size=4, workers=8).prefetch_factor == 2
    assert video_loader(folder, batch_size=4, workers=0).prefetch_factor is None
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        next(batched([], 0))
