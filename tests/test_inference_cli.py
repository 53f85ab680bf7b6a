"""inference.py and batch_inference.py end to end on generated videos with a tiny random captioner."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from lavis.common.registry import registry
from lavis.inference.loading import load_captioner
from lavis.models.blip2_video.config import LanguageConfig, QFormerConfig, VisionConfig
from tests.conftest import ROOT, subprocess_env
from tests.tiny_models import TINY_OPT, TINY_QFORMER, TINY_VISION, make_tokenizer
from tests.videos import truncate, write_video

SCRIPTS = ROOT / "lavis" / "projects" / "blip2_timesformer"
GENERATION = ["--num_beams", "2", "--max_length", "6", "--min_length", "2", "--num_workers", "1"]
BAD = {"truncated.mp4", "empty.mp4", "not_a_video.mp4"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random-weight captioner saved as a folder with its eval processor (3 frames, 28 px)."""
    root = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    model = registry.get("model", "blip2_video_opt")(
        vision=VisionConfig(**TINY_VISION), qformer=QFormerConfig(**TINY_QFORMER),
        language=LanguageConfig(kind="decoder_only", config=TINY_OPT, tokenizer=str(make_tokenizer(root / "tok", "opt"))),
        fusion="frame_queries", random_init=True,
    )
    model.save_pretrained(str(root / "model"), preprocess={"vis_processor": {"eval": {
        "name": "video_eval", "image_size": 28, "n_frms": 3}}})
    return root / "model"


def make_folder(path, good=6):
    path.mkdir()
    for i in range(good):
        write_video(path / f"clip_{i:02d}.mp4", num_frames=12 + 5 * i, size=(48, 40))
    truncate(path / "clip_00.mp4", path / "truncated.mp4", 0.3)
    (path / "empty.mp4").write_bytes(b"")
    (path / "not_a_video.mp4").write_text("hello")
    (path / "notes.txt").write_text("not listed: wrong extension")
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("videos") / "videos")


def run(script, *args, nproc=1, timeout=300):
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += [str(SCRIPTS / script), *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


def batch(video_dir, output, model, *extra, nproc=1):
    return run("batch_inference.py", "--video_dir", video_dir, "--output_file", output, "--checkpoint", model,
               *GENERATION, *extra, nproc=nproc)


def by_video(path):
    records = json.loads(path.read_text())
    assert len(records) == len({r["video"] for r in records}), "a video appears twice"
    return {r["video"]: r for r in records}


def test_inference_prints_captions_and_json_with_frame_times(tiny_model, videos):
    video = videos / "clip_03.mp4"
    proc = run("inference.py", "--video", video, "--checkpoint", tiny_model, "--num_beams", "3",
               "--num_captions", "2", "--max_length", "5", "--min_length", "2")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    proc = run("inference.py", "--video", video, "--checkpoint", tiny_model, "--json", "--n_frames", "4",
               "--max_length", "5", "--min_length", "2")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["video"] == str(video) and len(out["captions"]) == 1 and out["captions"][0]
    assert len(out["frame_timestamps"]) == 4 and out["frame_timestamps"] == sorted(out["frame_timestamps"])
    assert out["frame_timestamps"][-1] <= 27 / 10  # clip_03 has 27 frames at 10 fps


def test_inference_on_a_bad_video_fails_with_a_message(tiny_model, videos):
    proc = run("inference.py", "--video", videos / "truncated.mp4", "--checkpoint", tiny_model)
    assert proc.returncode == 1
    assert "truncated.mp4" in proc.stderr


def test_a_missing_checkpoint_is_a_clear_error(videos, tmp_path):
    proc = run("inference.py", "--video", videos / "clip_00.mp4", "--checkpoint", tmp_path / "nowhere")
    assert proc.returncode != 0 and "does not exist" in proc.stderr


def test_batch_records_captions_and_errors_and_batch_mates_do_not_matter(tiny_model, videos, tmp_path):
    one = batch(videos, tmp_path / "one.json", tiny_model, "--batch_size", "1")
    four = batch(videos, tmp_path / "four.json", tiny_model, "--batch_size", "4")
    assert one.returncode == 1 and four.returncode == 1  # some videos failed
    assert "3 failed" in four.stderr
    a, b = by_video(tmp_path / "one.json"), by_video(tmp_path / "four.json")
    assert sorted(a) == sorted(p.name for p in videos.glob("*.mp4"))
    assert {v for v, r in a.items() if "error" in r} == BAD
    for name, record in a.items():
        if name not in BAD:
            assert record["caption"] and len(record["frame_indices"]) == 3
            assert b[name]["caption"] == record["caption"], name
    # the same captions as loading the model in this process and captioning one video alone
    loaded = load_captioner(str(tiny_model))
    pixels, _ = loaded.processor(str(videos / "clip_04.mp4"))
    alone = loaded.model.generate({"video": pixels[None]}, num_beams=2, max_length=6, min_length=2,
                                  repetition_penalty=1.2)
    assert alone == [a["clip_04.mp4"]["caption"]]


def test_sampled_captions_depend_on_the_seed_and_the_video_not_the_batch(tiny_model, videos, tmp_path):
    sampling = ["--use_nucleus_sampling", "--num_beams", "1", "--num_captions", "2", "--temperature", "2.0"]
    one = batch(videos, tmp_path / "one.json", tiny_model, *sampling, "--batch_size", "1")
    four = batch(videos, tmp_path / "four.json", tiny_model, *sampling, "--batch_size", "4")
    assert one.returncode == 1 and four.returncode == 1, four.stderr  # the bad videos fail
    a, b = by_video(tmp_path / "one.json"), by_video(tmp_path / "four.json")
    good = sorted(set(a) - BAD)
    assert [a[v]["captions"] for v in good] == [b[v]["captions"] for v in good]
    assert any(len(set(a[v]["captions"])) == 2 for v in good)  # they are sampled


def test_rerun_skips_done_videos_and_retry_failed_captions_repaired_ones(tiny_model, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(3):
        write_video(folder / f"v{i}.mp4", num_frames=10)
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    out = tmp_path / "caps.json"
    assert batch(folder, out, tiny_model).returncode == 1
    assert "error" in by_video(out)["broken.mp4"]
    write_video(folder / "broken.mp4", num_frames=10)  # the file gets fixed
    rerun = batch(folder, out, tiny_model)
    assert rerun.returncode == 1 and "0 to caption" in rerun.stderr  # failures are not retried by default
    retried = batch(folder, out, tiny_model, "--retry_failed")
    assert retried.returncode == 0, retried.stderr
    assert "1 to caption" in retried.stderr
    assert all("caption" in r for r in by_video(out).values())
    (folder / "v0.mp4").unlink()  # a video removed from the folder leaves the merged output
    assert batch(folder, out, tiny_model).returncode == 0
    assert sorted(by_video(out)) == ["broken.mp4", "v1.mp4", "v2.mp4"]


def test_kill_9_and_rerun_captions_every_video_exactly_once(tiny_model, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(10):
        write_video(folder / f"v{i:02d}.mp4", num_frames=10 + i)
    out = tmp_path / "caps.json"
    part = tmp_path / "caps.json.parts" / "rank00000.jsonl"
    cmd = [sys.executable, str(SCRIPTS / "batch_inference.py"), "--video_dir", str(folder), "--output_file", str(out),
           "--checkpoint", str(tiny_model), "--batch_size", "1", *GENERATION[:-2], "--num_workers", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not part.exists() or part.read_text().count("\n") < 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = part.read_text().count("\n")
    assert 3 <= done_before < 10 and not out.exists()
    finished = batch(folder, out, tiny_model, "--batch_size", "1")
    assert finished.returncode == 0, finished.stderr
    assert f"{10 - done_before} to caption" in finished.stderr
    records = by_video(out)
    assert sorted(records) == [f"v{i:02d}.mp4" for i in range(10)]
    lines = [json.loads(line) for line in part.read_text().splitlines()]
    assert sorted(r["video"] for r in lines) == sorted(records)  # nothing captioned twice
    straight = batch(folder, tmp_path / "straight.json", tiny_model, "--batch_size", "1")
    assert straight.returncode == 0
    assert by_video(tmp_path / "straight.json") == records


def test_killing_torchrun_ends_its_ranks_and_workers_and_a_rerun_captions_every_video_once(tiny_model, tmp_path,
                                                                                            marked):
    """torchrun starts each rank in a session of its own: SIGKILL to torchrun's process group
    reaches none of them, yet ranks and their decoding workers must stop within seconds, or
    they go on writing the part files beside the rerun."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(4):
        write_video(folder / f"v{i:03d}.mp4", num_frames=10 + i)
    for i in range(4, 240):  # enough work that ranks left running would still be at it seconds later
        shutil.copy(folder / f"v{i % 4:03d}.mp4", folder / f"v{i:03d}.mp4")
    out = tmp_path / "caps.json"
    parts = [tmp_path / "caps.json.parts" / f"rank{r:05d}.jsonl" for r in (0, 1)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(SCRIPTS / "batch_inference.py"), "--video_dir", str(folder), "--output_file", str(out),
           "--checkpoint", str(tiny_model), "--batch_size", "1", *GENERATION]
    torchrun = subprocess.Popen(cmd, cwd=ROOT, env=marked.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not all(p.exists() and p.read_text().count("\n") for p in parts):
        time.sleep(0.05)
    assert len(marked.alive()) == 5  # torchrun, two ranks, a decoding worker each
    os.killpg(torchrun.pid, signal.SIGKILL)
    torchrun.wait()
    assert marked.wait_gone(3) == []
    assert not out.exists()
    rerun = batch(folder, out, tiny_model, "--batch_size", "4", nproc=2)
    assert rerun.returncode == 0, rerun.stderr
    records = by_video(out)
    assert sorted(records) == [f"v{i:03d}.mp4" for i in range(240)]
    lines = [json.loads(line)["video"] for p in parts for line in p.read_text().splitlines()]
    assert sorted(lines) == sorted(records)  # nothing captioned twice


def test_a_second_run_on_parts_another_run_writes_stops_with_one_line(tiny_model, videos, tmp_path, caplog):
    from lavis.inference.records import PartFile
    from lavis.projects.blip2_timesformer import batch_inference

    out = tmp_path / "caps.json"
    part = tmp_path / "caps.json.parts" / "rank00003.jsonl"  # a part of an earlier 4-rank run, still going
    with PartFile(part):
        proc = batch(videos, out, tiny_model)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1 and str(part) in errors[0] and f"pid {os.getpid()}" in errors[0], proc.stderr
        mine = tmp_path / "caps.json.parts" / "rank00000.jsonl"
        with PartFile(mine):  # a rank whose own part is taken (by a run that started meanwhile) opens none
            args = batch_inference.parse_args(["--video_dir", str(videos), "--output_file", str(out)])
            assert batch_inference.open_part(args, 0) is None
        assert str(mine) in caplog.text and "is being written by another process" in caplog.text
    assert not out.exists()


def test_two_ranks_split_the_folder_and_give_the_same_captions(tiny_model, videos, tmp_path):
    single = batch(videos, tmp_path / "single.json", tiny_model, "--batch_size", "2")
    double = batch(videos, tmp_path / "double.json", tiny_model, "--batch_size", "2", nproc=2)
    assert single.returncode == 1 and double.returncode == 1, double.stderr
    assert by_video(tmp_path / "double.json") == by_video(tmp_path / "single.json")
    parts = sorted(p.name for p in (tmp_path / "double.json.parts").iterdir())
    assert parts == ["rank00000.jsonl", "rank00000.jsonl.lock", "rank00001.jsonl", "rank00001.jsonl.lock"]
    assert all((tmp_path / "double.json.parts" / p).read_text() for p in parts[::2])


def test_gallery_shows_every_video_and_caption_in_headless_chromium(tiny_model, videos, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver_path = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)")
        pytest.skip("chromium / chromedriver not installed")
    proc = batch(videos, tmp_path / "caps.json", tiny_model, "--html", tmp_path / "gallery")
    assert proc.returncode == 1
    records = by_video(tmp_path / "caps.json")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        browser.get((tmp_path / "gallery" / "index.html").as_uri())
        rows = browser.find_elements("css selector", "tr.video")
        shown = {row.find_element("css selector", "td.name").text: row for row in rows}
        assert sorted(shown) == sorted(records)
        for name, record in records.items():
            text = shown[name].text
            assert (record["error"] if "error" in record else record["caption"]) in text
            images = shown[name].find_elements("css selector", "img")
            assert len(images) == (0 if "error" in record else 3)
            assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images)
        browser.find_element("id", "sort-name-desc").click()
        order = [row.get_attribute("data-name") for row in browser.find_elements("css selector", "tr.video")]
        assert order == sorted(records, reverse=True)
        browser.find_element("id", "sort-status").click()
        status = [row.get_attribute("data-status") for row in browser.find_elements("css selector", "tr.video")]
        assert status == ["error"] * 3 + ["ok"] * 6
    finally:
        browser.quit()


def test_a_folder_whose_weights_do_not_fit_is_a_load_error(tiny_model, tmp_path):
    """Inference CLIs report a ``LoadError`` as one line and exit 2; unfitting weights are one."""
    import shutil

    from safetensors.torch import load_file, save_file

    from lavis.inference import LoadError, load_captioner

    shutil.copytree(tiny_model, tmp_path / "model")
    state = load_file(tmp_path / "model" / "model.safetensors")
    save_file({k: v for k, v in state.items() if k != "projection.bias"}, tmp_path / "model" / "model.safetensors")
    with pytest.raises(LoadError, match=r"does not fit the model: missing projection.bias"):
        load_captioner(str(tmp_path / "model"))
