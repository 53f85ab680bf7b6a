"""The built-in demo model: shipped as a small safetensors folder, the default of the inference
CLIs, and right about what happens in the demo videos (clips it never trained on)."""

import json
import subprocess
import sys

from lavis.datasets.synthetic import generate
from lavis.datasets.synthetic.captions import COLOUR_WORDS, SHAPE_WORDS
from lavis.inference.loading import DEMO_MODEL, DEMO_VIDEOS
from tests.conftest import ROOT, subprocess_env

SCRIPTS = ROOT / "lavis" / "projects" / "blip2_timesformer"


def mentions(caption: str, words: tuple[str, ...]) -> bool:
    padded = f" {caption} "
    return any(f" {w} " in padded for w in words)


def test_demo_model_is_a_small_safetensors_folder():
    files = {p.name for p in DEMO_MODEL.iterdir()}
    assert {"model.safetensors", "config.yaml", "preprocess.yaml", "tokenizer"} <= files
    assert not any(name.endswith((".pth", ".bin", ".pt")) for name in files)
    size = sum(p.stat().st_size for p in DEMO_MODEL.rglob("*") if p.is_file())
    assert size < 20 * 2**20


def test_demo_model_is_the_default_and_describes_the_demo_videos(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "batch_inference.py"), "--video_dir", str(DEMO_VIDEOS), "--output_file",
         str(tmp_path / "demo.json"), "--num_beams", "3", "--num_workers", "1"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "using the built-in demo model" in proc.stderr
    scenes = json.loads((DEMO_VIDEOS / "scenes.json").read_text())
    captions = {r["video"]: r["caption"] for r in json.loads((tmp_path / "demo.json").read_text())}
    assert sorted(captions) == sorted(scenes)
    # What the shipped model gets right: how many objects there are, each one's colour and, in most
    # clips, each one's shape (by chance a clip's shapes would all be named right about 1 time in 10).
    right = shapes_right = 0
    for name, scene in scenes.items():
        count_ok = (len(scene["objects"]) == 2) == (" and a" in captions[name] or " and an" in captions[name])
        colours_ok = all(mentions(captions[name], COLOUR_WORDS.get(o["colour"], (o["colour"],))) for o in scene["objects"])
        right += count_ok and colours_ok
        shapes_right += all(mentions(captions[name], SHAPE_WORDS[o["shape"]]) for o in scene["objects"])
    assert right >= len(scenes) - 1, captions  # one slip allowed
    assert shapes_right >= len(scenes) - 2, captions


def test_inference_with_no_checkpoint_uses_the_demo_model():
    video = sorted(DEMO_VIDEOS.glob("*.mp4"))[0]
    proc = subprocess.run([sys.executable, str(SCRIPTS / "inference.py"), "--video", str(video), "--json"],
                          cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "using the built-in demo model" in proc.stderr
    out = json.loads(proc.stdout)
    assert out["model"] == str(DEMO_MODEL) and len(out["frame_timestamps"]) == 8 and out["captions"][0]


def test_evaluate_msrvtt_script_prints_the_four_metrics(tmp_path):
    """The script's launcher and metric read-out, on a generated shapes test split (no MSR-VTT here)."""
    generate(tmp_path / "data" / "shapes", num_videos=30, seed=5)
    env = {**subprocess_env(), "LAVIS_DATA_ROOT": str(tmp_path / "data"), "PYTHON": sys.executable,
           "CFG": str(ROOT / "lavis" / "projects" / "shapes" / "caption_shapes_eval.yaml")}
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "eval" / "evaluate_msrvtt.sh"), "1", f"model.finetuned={DEMO_MODEL}",
         f"run.output_dir={tmp_path / 'out'}", "run.num_workers=1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("test: "))
    for metric in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        assert metric in line
    assert "(3 videos" in line
