"""The CLIP frame selector: pixels, losses, selection, sim_m, data, the runner and the CLIs.

Tiny random CLIP (the shipped byte-level tokenizer) and DINOv2 models; synthetic QA videos.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lavis.datasets.qa_frames import caption_text, read_qa_file, split_by_video
from lavis.datasets.synthetic.generate import generate
from lavis.metrics.sim_m import best_similarity, coverable, summarize
from lavis.models import load_model
from lavis.models.clip_frame_selector import ClipFrameSelector
from lavis.models.clip_frame_selector.frames import FrameProcessor, square_views
from lavis.models.clip_frame_selector.losses import LOSSES
from lavis.models.clip_frame_selector.select import best_per_segment, get_top4_frames, uniform_choice
from lavis.models.image_embedders import build_embedder
from tests.conftest import ROOT, subprocess_env

QUESTION_VI = "Khi nào xe màu đỏ biến mất khỏi khung hình?"


def tiny_selector(loss_setting: int = 1) -> ClipFrameSelector:
    torch.manual_seed(0)
    return load_model("clip_frame_selector", "tiny", is_eval=False, loss_setting=loss_setting)


def test_frozen_towers_stay_in_eval_after_train():
    torch.manual_seed(0)
    selector = load_model("clip_frame_selector", "tiny", is_eval=False, freeze_vision=True).train()
    assert not any(m.training for m in selector.clip.vision_model.modules())
    assert all(m.training for m in selector.clip.text_model.modules()) and selector.training


def random_frames(n: int, seed: int = 0, size: tuple[int, int] = (36, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


# ---------------------------------------------------------------- pixels
def test_pad_keeps_the_whole_wide_frame_and_center_crop_does_not():
    frame = np.zeros((90, 160, 3), np.uint8)
    frame[:, :10] = 255  # a white stripe at the far left edge of a 16:9 frame
    padded = square_views(frame, 64, "pad")[0]
    cropped = square_views(frame, 64, "center_crop")[0]
    assert padded.shape == cropped.shape == (64, 64, 3)
    assert padded[24:40, :3].mean() > 200  # the stripe survives letterboxing (black bars above and below)
    assert cropped.max() == 0  # CLIP's centre crop loses it
    tiles = square_views(frame, 64, "tile")
    assert len(tiles) == 2 and tiles[0][:, :3].mean() > 200 and tiles[1].max() == 0  # two overlapping squares


def test_frame_processor_rejects_non_rgb_and_maps_tiles_to_frames():
    proc = FrameProcessor(32, "tile")
    pixels, owner = proc([np.zeros((90, 160, 3), np.uint8), np.zeros((50, 50, 3), np.uint8)])
    assert pixels.shape == (3, 3, 32, 32) and owner.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="uint8"):
        proc([np.zeros((8, 8, 3), np.float32)])


# ---------------------------------------------------------------- losses
@pytest.mark.parametrize("setting", [1, 2, 3])
def test_each_loss_trains_on_a_single_positive(setting):
    """The reference's contrastive loss is exactly 0 with one positive; ours must not be."""
    model = tiny_selector(setting)
    frames = random_frames(5)
    batch = {"text_input": ["When does the red star disappear?"], "frames": frames,
             "owner": torch.zeros(5, dtype=torch.long), "label": torch.tensor([1.0, 0, 0, 0, 0])}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(15):
        loss = model(batch)["loss"]
        loss.backward()
        if step == 0:
            assert loss.item() > 1e-3
            grads = [p.grad.abs().sum().item() for p in model.clip.vision_model.parameters() if p.grad is not None]
            assert sum(grads) > 0, "no gradient reaches the image tower"
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_contrastive_loss_uses_other_captions_frames():
    logits = torch.tensor([[2.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 3.0]], requires_grad=True)
    owner, label = torch.tensor([0, 0, 1, 1]), torch.tensor([1.0, 0.0, 1.0, 0.0])
    loss = LOSSES[3](logits, owner, label)
    loss.backward()
    # caption 1's positive (column 2) is pushed up against caption 0 too (frame -> caption term)
    assert logits.grad[0, 2] > 0 and logits.grad[1, 2] < 0
    expected = ((torch.logsumexp(logits[0], 0) - logits[0, 0]) + (torch.logsumexp(logits[1], 0) - logits[1, 2])) / 2
    frame_to_caption = torch.nn.functional.cross_entropy(logits[:, [0, 2]].T, torch.tensor([0, 1]))
    assert torch.allclose(loss, expected + frame_to_caption)


# ---------------------------------------------------------------- the model
def test_save_pretrained_round_trip_keeps_scores_and_settings(tmp_path):
    model = tiny_selector(3).eval()
    with torch.no_grad():
        model.bias.fill_(-3.25)
    frames = random_frames(4, size=(48, 80))
    before = model.score(QUESTION_VI, frames)
    model.save_pretrained(tmp_path / "sel")
    loaded = ClipFrameSelector.from_pretrained(tmp_path / "sel").eval()
    assert loaded.loss_setting == 3 and loaded.bias.item() == pytest.approx(-3.25)
    assert torch.allclose(loaded.score(QUESTION_VI, frames), before, atol=1e-6)


def test_missing_clip_weights_name_the_key_and_the_remedy(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model\.path.*huggingface-cli download openai/clip-vit-large-patch14"):
        load_model("clip_frame_selector", "large", path=str(tmp_path / "nowhere"),
                   tokenizer=str(ROOT / "lavis/projects/clip_frame_selector/tokenizer"))


def test_vietnamese_text_tokenizes_without_unknowns():
    model = tiny_selector()
    ids = model.tokenizer(QUESTION_VI)["input_ids"]
    assert model.tokenizer.decode(ids, skip_special_tokens=True).strip() == QUESTION_VI.lower()  # byte-level: lossless


# ---------------------------------------------------------------- selection and sim_m
def test_best_frame_per_segment_and_uniform_choice():
    times = [i * 0.5 for i in range(8)]  # 4 s, two candidates per 1 s segment
    scores = [0, 5, 1, 0, 0, 2, 9, 3]
    assert best_per_segment(scores, times, 4.0, k=4) == [1, 2, 5, 6]
    assert best_per_segment(scores, times, 4.0, k=2, segments=4) == [1, 6]  # the 2 best winners
    assert uniform_choice(times, 4.0, 4) == [1, 3, 5, 7]


def test_sim_m_counts_every_true_frame_and_the_oracle():
    sims = torch.tensor([[0.99, 0.5, 0.2], [0.3, 0.96, 0.97]])
    assert best_similarity(sims, [0, 2]) == pytest.approx([0.99, 0.97])
    assert coverable(sims >= 0.95, k=2) and not coverable(sims >= 0.95, k=1)
    assert not coverable(sims >= 0.98, k=3)
    results = [
        {"true_times": [1.0, 1.1], "selected_times": [1.0, 3.0], "uniform_times": [0.5, 2.5],
         "selector_similarity": [0.99, 0.97], "uniform_similarity": [0.99, 0.5], "oracle": {"0.95": True}},
        {"true_times": [2.0], "selected_times": [0.0], "uniform_times": [2.1],
         "selector_similarity": [0.5], "uniform_similarity": [0.96], "oracle": {"0.95": True}},
    ]
    metrics = summarize(results, [0.95], tolerance=0.2)
    assert metrics["sim_0.95"] == 0.5 and metrics["uniform_sim_0.95"] == 0.5 and metrics["oracle_sim_0.95"] == 1.0
    assert metrics["hit@0.2s"] == 0.5 and metrics["uniform_hit@0.2s"] == 0.5  # 1.0 hits 1.0 and 1.1; 2.1 hits 2.0


def tiny_dinov2(folder: Path) -> Path:
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             patch_size=8, image_size=32)).save_pretrained(folder)
    return folder


def test_dinov2_embedder_from_a_local_folder(tmp_path):
    embed = build_embedder({"name": "dinov2", "path": str(tiny_dinov2(tmp_path / "dinov2")), "image_size": 32, "device": "cpu"})
    frames = np.stack(random_frames(3, size=(40, 70)))
    out = embed(np.concatenate([frames, frames[:1]]))
    assert out.shape == (4, 32) and torch.allclose(out.norm(dim=1), torch.ones(4), atol=1e-5)
    assert float(out[0] @ out[3]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(FileNotFoundError, match="facebook/dinov2-large"):
        build_embedder({"name": "dinov2", "path": str(tmp_path / "missing")})


# ---------------------------------------------------------------- data
@pytest.fixture(scope="module")
def qa_set(tmp_path_factory):
    """A small synthetic QA set and its mined frames."""
    from lavis.datasets.frame_mining import mine_negatives

    root = tmp_path_factory.mktemp("qa")
    generate(root, 0, seed=3, qa=24, size=64)
    mine_negatives(root / "qa", root / "mined", min_gap=0.3)
    return root


def test_split_by_video_never_shares_a_video_and_reads_utf8(tmp_path):
    data = [{"id": f"q{i}", "question": QUESTION_VI, "choices": ["A. một", "B. hai"], "answer": "A. một",
             "support_frames": [1.0], "video_path": f"v{i // 2}.mp4"} for i in range(20)]
    path = tmp_path / "qa.json"
    path.write_text(json.dumps({"data": data}, ensure_ascii=False), encoding="utf-8")
    samples = read_qa_file(path)
    train, val = split_by_video(samples, 0.3, seed=1)
    assert {s.video_path for s in train}.isdisjoint({s.video_path for s in val})
    assert len(train) + len(val) == 20 and len({s.video_path for s in val}) == 3
    assert caption_text(samples[0], 3) == f"{QUESTION_VI} A. một B. hai"
    assert caption_text(samples[0], 2) == "A. một B. hai"
    with pytest.raises(ValueError, match="caption_setting"):
        caption_text(samples[0], 4)


def test_get_top4_frames_returns_one_frame_per_segment(qa_set):
    sample = read_qa_file(qa_set / "qa" / "frame_selection.json")[0]
    model = tiny_selector().eval()
    frames, scores, times = get_top4_frames(
        qa_set / "qa" / sample.video_path, sample.question, model, k=4, fps_target=10.0, output_size=(96, 54)
    )
    assert len(frames) == len(scores) == len(times) == 4
    assert all(f.shape == (54, 96, 3) for f in frames)
    assert [int(t / 0.75) for t in times] == [0, 1, 2, 3]  # 3 s video, four 0.75 s segments


def test_task_scores_with_dinov2_and_records_unreadable_videos(qa_set, tmp_path):
    """valid_step -> evaluate with the default (DINOv2) embedder; a corrupt video is an error record."""
    from lavis.datasets.builders.frame_selection_builder import QAFrameMiningBuilder
    from lavis.tasks.frame_selection import FrameSelectionTask

    root = tmp_path / "qa"
    shutil.copytree(qa_set / "qa", root)
    samples = read_qa_file(root / "frame_selection.json")
    (root / samples[0].video_path).write_bytes(b"garbage")
    builder = QAFrameMiningBuilder(json_path=str(root / "frame_selection.json"), video_root=str(root),
                                   ratio=0.0, test_json_path=str(root / "frame_selection.json"), fps_target=10.0, max_side=64)
    test_set = builder.build_datasets()["test"]
    task = FrameSelectionTask(embedder={"name": "dinov2", "path": str(tiny_dinov2(tmp_path / "dinov2")), "image_size": 32})
    model = tiny_selector().eval()
    results = task.valid_step(model, test_set.collater([test_set[i] for i in range(4)]))
    assert [r["id"] for r in results] == [s.id for s in samples[:4]] and "error" in results[0]
    assert all(len(r["selected_times"]) == 4 and len(r["selector_similarity"]) == 2 for r in results[1:])
    metrics = task.evaluate(results, "test", test_set, tmp_path)
    assert metrics["num_samples"] == 3 and metrics["num_skipped"] == 1
    assert metrics["oracle_sim_0.99"] >= max(metrics["sim_0.99"], metrics["uniform_sim_0.99"])


# ---------------------------------------------------------------- runner and CLIs
def run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


def metric_lines(job: Path) -> list[dict]:
    return [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines() if '"split"' in line]


def test_train_front_end_then_evaluate_and_predict(qa_set, tmp_path):
    """The reference command line trains through the runner under torchrun (2 ranks); evaluate.py
    (1 and 2 ranks, same metrics) and predict.py use the saved selector."""
    out = tmp_path / "out"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    train = run(torchrun + ["scripts/frame_selection/train.py", "--json_path", str(qa_set / "qa/frame_selection.json"),
                 "--image_path", str(qa_set / "mined"), "--video_path", str(qa_set / "qa"), "--caption_setting", "3",
                 "--output_path", str(out), "--ratio", "0.25", "--model_name", "unused", "--loss_setting", "3",
                 "--cfg-path", "lavis/projects/clip_frame_selector/train_shapes.yaml",
                 "--options", "run.max_steps=6", "run.val_freq=3", "run.job_id=j", "run.batch_size_train=4",
                 "run.num_workers=0", "model.loss_setting=3"])
    assert train.returncode == 0, train.stderr[-3000:]
    job = out / "j"
    assert (job / "pretrained" / "selector.yaml").is_file()
    val = metric_lines(job)
    assert [m["step"] for m in val] == [3, 6] and all(m["num_samples"] == 6 for m in val)

    evals = {}
    for nproc in (1, 2):
        launcher = torchrun if nproc > 1 else [sys.executable]
        proc = run(launcher + ["evaluate.py", "--cfg-path", "lavis/projects/clip_frame_selector/eval_shapes.yaml", "--options",
                               f"model.path={job / 'pretrained'}", f"datasets.qa_frame_mining.json_path={qa_set / 'qa/frame_selection.json'}",
                               f"datasets.qa_frame_mining.video_root={qa_set / 'qa'}", "datasets.qa_frame_mining.ratio=0.25",
                               f"run.output_dir={tmp_path / 'eval'}", f"run.job_id=n{nproc}", "run.num_workers=0"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        evals[nproc] = metric_lines(tmp_path / "eval" / f"n{nproc}")[-1]
        results = json.loads((tmp_path / "eval" / f"n{nproc}" / "result" / "val_final.json").read_text())
        assert len({r["id"] for r in results}) == len(results) == 6
    assert evals[1] == evals[2]
    assert evals[1]["oracle_sim_0.95"] >= evals[1]["sim_0.95"]

    sample = read_qa_file(qa_set / "qa/frame_selection.json")[0]
    pred = run([sys.executable, "scripts/frame_selection/predict.py", "--model", str(job / "pretrained"),
                "--video", str(qa_set / "qa" / sample.video_path), "--question", QUESTION_VI, "--choices", "A. đỏ", "B. xanh",
                "--fps_target", "10", "--output_size", "original", "--save_dir", str(tmp_path / "frames"), "--json"])
    assert pred.returncode == 0, pred.stderr[-3000:]
    chosen = json.loads(pred.stdout)
    assert chosen["text"] == f"{QUESTION_VI} A. đỏ B. xanh" and len(chosen["frames"]) == 4
    assert all(Path(f["file"]).is_file() for f in chosen["frames"])

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    failed = run([sys.executable, "scripts/frame_selection/predict.py", "--model", str(job / "pretrained"),
                  "--video", str(bad), "--question", "q"])
    assert failed.returncode == 1 and "bad.mp4" in failed.stderr
    missing = run([sys.executable, "scripts/frame_selection/predict.py", "--model", str(tmp_path / "none"),
                   "--video", str(bad), "--question", "q"])
    assert missing.returncode == 2 and "huggingface-cli download" in missing.stderr
