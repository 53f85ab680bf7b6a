"""Caption datasets, builders and processors on generated videos."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import tests.plugins.toy  # noqa: F401  (a registered task, so run configs validate)
from lavis.common.config import load_config
from lavis.common.registry import registry
from lavis.common.schema import ConfigError
from lavis.datasets.annotations import AnnotationError, write_caption_annotations
from lavis.datasets.samplers import SeededDataset, TrainSampler
from lavis.processors import build_processor
from tests.videos import write_video

SPLITS = {"train": ["v0", "v1", "bad"], "val": ["v2"], "test": ["v3", "v4"]}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "shapes"
    (root / "videos").mkdir(parents=True)
    for i in range(5):
        write_video(root / "videos" / f"v{i}.mp4", num_frames=20 + 5 * i, size=(80, 48))
    (root / "videos" / "bad.mp4").write_bytes(b"\x00" * 1000)
    for split, ids in SPLITS.items():
        rows = [{"video": f"{v}.mp4", "caption": f"A Video ({v}) number {k}.", "image_id": v}
                for v in ids for k in range(2)]
        write_caption_annotations(rows, root / "annotations" / f"cap_{split}.json")
    return root.parent


def build(data_root, monkeypatch, *options):
    monkeypatch.setenv("LAVIS_DATA_ROOT", str(data_root))
    run = {"run": {"task": "toy_classification", "custom_imports": ["tests.plugins.toy"]},
           "datasets": {"shapes_caption": {}}}
    path = data_root / "run.yaml"
    path.write_text(json.dumps(run))
    cfg = load_config(path, ["datasets.shapes_caption.vis_processor.train.image_size=32",
                             "datasets.shapes_caption.vis_processor.eval.image_size=32",
                             "datasets.shapes_caption.vis_processor.train.n_frms=4",
                             "datasets.shapes_caption.vis_processor.eval.n_frms=4", *options])
    return registry.get("builder", "shapes_caption")(**cfg.datasets["shapes_caption"]).build_datasets()


def test_train_split_has_one_sample_per_caption_and_skips_bad_videos(data_root, monkeypatch):
    datasets = build(data_root, monkeypatch, "datasets.shapes_caption.text_processor.train.prompt='a video of '")
    train = datasets["train"]
    assert len(train) == 6
    sample = train[0]
    assert sample["video"].shape == (4, 3, 32, 32) and sample["video"].dtype == torch.float32
    assert sample["text_input"] == "a video of a video v0 number 0"
    assert sample["video_id"] == "v0" and len(sample["timestamps"]) == 4
    batch = train.collater([train[i] for i in range(6)])
    assert batch["video"].shape == (4, 4, 3, 32, 32)
    assert batch["video_id"] == ["v0", "v0", "v1", "v1"]
    assert [(pos, vid) for pos, vid, _ in batch["skipped"]] == [(4, "bad"), (5, "bad")]
    assert "not a readable video container" in batch["skipped"][0][2]


def test_eval_splits_have_one_sample_per_video_and_their_own_ground_truth(data_root, monkeypatch):
    datasets = build(data_root, monkeypatch)
    test = datasets["test"]
    assert len(test) == 2 and [test[i]["video_id"] for i in range(2)] == ["v3", "v4"]
    assert "text_input" not in test[0]
    assert test.references == {"v3": ["A Video (v3) number 0.", "A Video (v3) number 1."],
                               "v4": ["A Video (v4) number 0.", "A Video (v4) number 1."]}
    gt = test.ground_truth()
    assert [img["id"] for img in gt["images"]] == ["v3", "v4"]
    assert {a["image_id"] for a in gt["annotations"]} == {"v3", "v4"} and len(gt["annotations"]) == 4
    assert [img["id"] for img in datasets["val"].ground_truth()["images"]] == ["v2"]


def test_eval_frames_are_uniform_and_deterministic(data_root, monkeypatch):
    val = build(data_root, monkeypatch)["val"]
    a, b = val[0], val[0]
    assert torch.equal(a["video"], b["video"])
    assert a["timestamps"] == pytest.approx([0.3, 1.1, 1.8, 2.6])  # 30 frames at 10 fps: 3, 11, 18, 26


def test_training_randomness_depends_only_on_seed_epoch_and_index(data_root, monkeypatch):
    train = build(data_root, monkeypatch)["train"]
    seeded = SeededDataset(train, seed=3)

    def batches(workers, epoch):
        sampler = TrainSampler(len(train), 0, 1, seed=3, epoch=epoch)
        loader = DataLoader(seeded, batch_size=3, sampler=sampler, num_workers=workers,
                            collate_fn=train.collater, generator=torch.Generator().manual_seed(0))
        return [b["video"] for b in loader]

    zero, two = batches(0, 0), batches(2, 0)
    assert all(torch.equal(x, y) for x, y in zip(zero, two))
    assert not all(torch.equal(x, y) for x, y in zip(zero, batches(0, 1)))


def test_missing_paths_name_the_config_key(data_root, monkeypatch, tmp_path):
    with pytest.raises(AnnotationError, match=r"does not exist \(set by 'datasets.shapes_caption.annotations.val'\)"):
        build(data_root, monkeypatch, f"datasets.shapes_caption.annotations.val={tmp_path}/none.json")
    with pytest.raises(FileNotFoundError, match="set by 'datasets.shapes_caption.videos'"):
        build(data_root, monkeypatch, f"datasets.shapes_caption.videos={tmp_path}/none")


def test_processor_keys_are_validated(data_root, monkeypatch):
    with pytest.raises(ConfigError, match="vis_processor.train.n_frm'.*did you mean .*n_frms'"):
        build(data_root, monkeypatch, "datasets.shapes_caption.vis_processor.train.n_frm=3")
    with pytest.raises(ConfigError, match="min_scale' = 'big'"):
        build(data_root, monkeypatch, "datasets.shapes_caption.vis_processor.train.min_scale=big")
    with pytest.raises(Exception, match="did you mean 'video_eval'"):
        build(data_root, monkeypatch, "datasets.shapes_caption.vis_processor.eval.name=video_evl")


def test_processors(data_root):
    video = data_root / "shapes" / "videos" / "v4.mp4"
    evaluate = build_processor({"name": "video_eval", "image_size": 48, "n_frms": 3, "normalization": "imagenet"})
    tensor, clip = evaluate(video)
    assert tensor.shape == (3, 3, 48, 48)
    red = tensor[0, :, -2, 24] * torch.tensor([0.229, 0.224, 0.225]) + torch.tensor([0.485, 0.456, 0.406])
    assert red[0] > 0.8 and red[1] < 0.25 and red[2] < 0.25
    train = build_processor({"name": "video_train", "image_size": 24, "n_frms": 5, "min_scale": 0.2})
    torch.manual_seed(0), np.random.seed(0)
    first, _ = train(video)
    torch.manual_seed(0), np.random.seed(0)
    again, _ = train(video)
    assert first.shape == (5, 3, 24, 24) and torch.equal(first, again)
    caption = build_processor({"name": "caption", "prompt": "a video of ", "max_words": 4})
    assert caption("A Man (on stage) sings: loudly!\n") == "a video of a man on stage"


def test_shuffled_video_control_pairs_references_with_other_videos(data_root, monkeypatch):
    plain = build(data_root, monkeypatch)["test"]
    shuffled = build(data_root, monkeypatch, "datasets.shapes_caption.shuffle_videos_seed=0")["test"]
    assert [shuffled[i]["video_id"] for i in range(2)] == ["v3", "v4"]  # ids and references stay
    assert torch.equal(shuffled[0]["video"], plain[1]["video"]) and torch.equal(shuffled[1]["video"], plain[0]["video"])
