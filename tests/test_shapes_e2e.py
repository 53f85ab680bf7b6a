"""Captioning end to end on a small generated shapes set: train, evaluate, SCST, 1 vs 2 ranks."""

import json
import subprocess
import sys

import pytest

from lavis.datasets.synthetic import generate
from tests.conftest import ROOT, read_metrics, subprocess_env

FT = ROOT / "lavis" / "projects" / "shapes" / "caption_shapes_ft.yaml"
SMALL = [
    "datasets.shapes_caption.vis_processor.train.n_frms=4", "datasets.shapes_caption.vis_processor.eval.n_frms=4",
    "run.batch_size_train=4", "run.batch_size_eval=3", "run.num_workers=1", "run.num_beams=2", "run.max_len=8",
    "run.warmup_steps=2", "run.log_freq=2",
]


def run_script(script, cfg, options, nproc=1, data_root=None):
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += [str(ROOT / script), "--cfg-path", str(cfg), "--options", *options]
    env = {**subprocess_env(), "LAVIS_DATA_ROOT": str(data_root)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stderr[-5000:]}")
    return proc


def ft_options(root):
    """The small settings, with the stage-1 vision encoder the fixture pretrained."""
    return [*SMALL, f"model.vision_weights={root / 'vision'}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Stage 1 (vision pretraining, a few steps) and stage 2 (caption training) as the README runs them."""
    root = tmp_path_factory.mktemp("shapes")
    generate(root / "data" / "shapes", num_videos=20, seed=1, size=64, fps=8, seconds=2.0)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "pretrain_shapes_vision.py"), "--out",
                           str(root / "vision"), "--steps", "3", "--batch_size", "4", "--eval_every", "3"],
                          cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pretrained vision encoder: 3 steps" in proc.stderr
    out = root / "out"
    run_script("train.py", FT, [*ft_options(root), f"run.output_dir={out}", "run.job_id=ft", "run.max_steps=6",
                                "run.save_freq=6", "run.val_freq=6", "run.valid_splits=[val]", "run.test_splits=[]"],
               data_root=root / "data")
    return root, out / "ft" / "checkpoint_0000006.pth"


def test_evaluation_on_two_ranks_equals_one(trained):
    root, ckpt = trained
    options = [*ft_options(root), f"run.output_dir={root / 'out'}", f"run.checkpoint={ckpt}", "run.test_splits=[test,val]"]
    run_script("evaluate.py", FT, [*options, "run.job_id=one"], data_root=root / "data")
    run_script("evaluate.py", FT, [*options, "run.job_id=two"], nproc=2, data_root=root / "data")
    for split in ("test", "val"):
        one = json.loads((root / "out" / "one" / "result" / f"{split}_final.json").read_text())
        two = json.loads((root / "out" / "two" / "result" / f"{split}_final.json").read_text())
        assert one == two and len({r["video_id"] for r in one}) == len(one) == 2
    metrics = [r for r in read_metrics(root / "out" / "one") if r.get("split")]
    assert metrics == [r for r in read_metrics(root / "out" / "two") if r.get("split")]
    assert {"Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "agg_metrics"} <= set(metrics[0])
    assert (root / "out" / "one" / "result" / "test_gt.json").is_file()


def test_scst_from_the_checkpoint_on_two_ranks(trained):
    root, ckpt = trained
    run_script("train.py", FT, [
        *ft_options(root), f"run.output_dir={root / 'out'}", "run.job_id=scst", "run.task=scst", f"run.checkpoint={ckpt}",
        "run.max_steps=2", "run.scst_num_candidates=2", "run.valid_splits=[]", "run.test_splits=[]",
        "run.init_lr=1e-4", "run.log_freq=1"], nproc=2, data_root=root / "data")
    rewards = [r["reward"] for r in read_metrics(root / "out" / "scst") if "reward" in r]
    assert len(rewards) == 2 and all(r >= 0 for r in rewards)


def test_fsdp_training_validates_by_generation(trained):
    root, ckpt = trained
    run_script("train.py", FT, [
        *ft_options(root), f"run.output_dir={root / 'out'}", "run.job_id=fsdp", "run.wrapper=fsdp", f"run.checkpoint={ckpt}",
        "run.max_steps=2", "run.val_freq=2", "run.valid_splits=[val]", "run.test_splits=[test]"], nproc=2,
        data_root=root / "data")
    for name in ("val_step0000002", "test_best"):
        results = json.loads((root / "out" / "fsdp" / "result" / f"{name}.json").read_text())
        assert len({r["video_id"] for r in results}) == len(results) == 2
        assert all(isinstance(r["caption"], str) for r in results)


def test_inference_from_the_training_checkpoint_and_its_export_matches_evaluate(trained, tmp_path):
    """inference.py on train.py's .pth (built from the job's config.yaml, its 4-frame processor
    included) and on the exported folder gives the captions evaluate.py wrote."""
    root, ckpt = trained
    run_script("evaluate.py", FT, [*ft_options(root), f"run.output_dir={tmp_path}", f"run.checkpoint={ckpt}", "run.job_id=ev",
                                   "run.test_splits=[test]", "run.min_len=3"], data_root=root / "data")
    expected = {r["video_id"]: r["caption"] for r in json.loads((tmp_path / "ev" / "result" / "test_final.json").read_text())}
    export = subprocess.run([sys.executable, "-m", "lavis.inference.export", "--checkpoint", str(ckpt), "--out",
                             str(tmp_path / "exported")], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    decoding = ["--num_beams", "2", "--max_length", "8", "--min_length", "3", "--repetition_penalty", "1.0", "--json"]
    for source in (ckpt, tmp_path / "exported"):
        for video_id, caption in expected.items():
            proc = subprocess.run(
                [sys.executable, str(ROOT / "lavis" / "projects" / "blip2_timesformer" / "inference.py"), "--video",
                 str(root / "data" / "shapes" / "videos" / f"{video_id}.mp4"), "--checkpoint", str(source), *decoding],
                cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr
            out = json.loads(proc.stdout)
            assert out["captions"] == [caption] and len(out["frame_indices"]) == 4
