"""In-video negative mining on the synthetic QA set: the right positives, valid negatives,
reproducible and resumable output, per-sample errors, UTF-8 ids and the CLI's exit statuses."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from lavis.datasets.frame_mining import SettingsMismatchError, mine_negatives
from lavis.datasets.synthetic.generate import QA_FILE, generate
from lavis.models.image_embedders import build_embedder
from tests.conftest import ROOT, subprocess_env

SEED, FPS, DURATION = 11, 10, 3.0  # the generator's defaults: 30 frames at 10 fps
SETTINGS = {"segments": 6, "threshold": 0.95, "min_gap": 0.5, "max_tries": 3, "seed": 0}
SCRIPT = ROOT / "scripts" / "frame_selection" / "in_video_negative_mining.py"
TOL = 1e-6


@pytest.fixture(scope="module")
def qa_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes")
    generate(out, 0, SEED, qa=6, size=64)
    return (out / QA_FILE).parent


@pytest.fixture(scope="module")
def mined(qa_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mined")
    summary = mine_negatives(qa_folder, out, **SETTINGS)
    assert summary["mined"] == summary["samples"] == 6 and summary["errors"] == 0
    return out, summary


def qa_data(folder: Path) -> dict[str, dict]:
    return {item["id"]: item for item in json.loads((folder / "frame_selection.json").read_text("utf-8"))["data"]}


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def decode(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every frame and its time, straight from PyAV (not through the package's reader)."""
    with av.open(str(path)) as container:
        decoded = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(container.streams.video[0])]
    return np.array([t for t, _ in decoded]), [f for _, f in decoded]


def png(out: Path, file: str) -> np.ndarray:
    return np.array(Image.open(out / file).convert("RGB"))


def copy_qa(qa_folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(qa_folder, tmp_path / "qa"))


def write_qa(folder: Path, items: list[dict]) -> None:
    (folder / "frame_selection.json").write_text(json.dumps({"data": items}, ensure_ascii=False), encoding="utf-8")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT.relative_to(ROOT)), *args]
    return subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120)


def test_positives_are_the_frames_at_the_support_times(qa_folder: Path, mined: tuple[Path, dict]) -> None:
    out, _ = mined
    data = qa_data(qa_folder)
    records = manifest(out)["samples"]
    assert set(records) == set(data)
    for sample_id, record in records.items():
        times, frames = decode(qa_folder / data[sample_id]["video_path"])
        support = data[sample_id]["support_frames"]
        assert [p["time_requested"] for p in record["positives"]] == support
        for wanted, positive in zip(support, record["positives"]):
            nearest = int(np.argmin(np.abs(times - wanted)))
            assert positive["index"] == nearest
            assert abs(positive["time"] - wanted) <= 0.5 / FPS
            assert positive["time"] == pytest.approx(times[nearest], abs=TOL)
            assert positive["file"] == f"frames_true/{sample_id}/{round(times[nearest] * 1000):06d}ms.png"
            np.testing.assert_array_equal(png(out, positive["file"]), frames[nearest])
        assert sorted(p.name for p in (out / "frames_true" / sample_id).iterdir()) == sorted(
            Path(p["file"]).name for p in record["positives"])


def test_negatives_are_far_dissimilar_and_one_per_segment(qa_folder: Path, mined: tuple[Path, dict]) -> None:
    out, summary = mined
    data = qa_data(qa_folder)
    pixels = build_embedder({"name": "pixels"})
    width = DURATION / SETTINGS["segments"]
    records = manifest(out)["samples"]
    for sample_id, record in records.items():
        times, frames = decode(qa_folder / data[sample_id]["video_path"])
        assert len(frames) * (1 / FPS) == pytest.approx(record["duration"])
        positive_times = [p["time"] for p in record["positives"]]
        positive_vectors = pixels(np.stack([png(out, p["file"]) for p in record["positives"]]))
        segments = [n["segment"] for n in record["negatives"]]
        assert len(segments) == len(set(segments)) <= SETTINGS["segments"]
        for negative in record["negatives"]:
            t, image = negative["time"], png(out, negative["file"])
            np.testing.assert_array_equal(image, frames[negative["index"]])
            assert t == pytest.approx(times[negative["index"]], abs=TOL)
            assert all(abs(t - p) >= SETTINGS["min_gap"] - TOL for p in positive_times)
            segment = negative["segment"]
            assert segment * width - TOL <= t < (segment + 1) * width + TOL
            similarity = float((pixels(image[None]) @ positive_vectors.T).max())
            assert similarity == pytest.approx(negative["max_similarity"], abs=1e-4)
            assert similarity < SETTINGS["threshold"]
        assert sorted(p.name for p in (out / "frames_neg" / sample_id).glob("*.png")) == sorted(
            Path(n["file"]).name for n in record["negatives"])
    assert summary["negatives"] == sum(len(r["negatives"]) for r in records.values()) >= len(records)


def test_threshold_keeps_the_first_candidate_below_it(qa_folder: Path, tmp_path: Path) -> None:
    """Calibrated on the data: with no similarity limit each segment keeps its first candidate;
    a limit at their median keeps those below it and replaces (next try) or drops those above."""
    mine_negatives(qa_folder, tmp_path / "all", **{**SETTINGS, "threshold": 2.0})
    unlimited = manifest(tmp_path / "all")["samples"]
    first = {(sid, n["segment"]): n for sid, r in unlimited.items() for n in r["negatives"]}
    assert all(r["rejected"]["too_similar"] == 0 for r in unlimited.values())
    limit = float(np.median([n["max_similarity"] for n in first.values()]))
    assert min(n["max_similarity"] for n in first.values()) < limit  # the data has a spread to test

    summary = mine_negatives(qa_folder, tmp_path / "limited", **{**SETTINGS, "threshold": limit})
    records = manifest(tmp_path / "limited")["samples"]
    kept = {(sid, n["segment"]): n for sid, r in records.items() for n in r["negatives"]}
    assert all(n["max_similarity"] < limit for n in kept.values())
    assert set(kept) <= set(first)  # the limit never creates a negative where none was eligible
    for key, candidate in first.items():
        if candidate["max_similarity"] < limit:
            assert kept[key] == candidate
        else:
            assert key not in kept or kept[key]["index"] != candidate["index"]
    refused = sum(n["max_similarity"] >= limit for n in first.values())
    assert sum(r["rejected"]["too_similar"] for r in records.values()) >= refused > 0
    assert 0 < summary["negatives"] <= len(first)

    # One try per segment: only the segments whose first candidate is below the limit keep one.
    mine_negatives(qa_folder, tmp_path / "one", **{**SETTINGS, "threshold": limit, "max_tries": 1})
    one = {(sid, n["segment"]): n for sid, r in manifest(tmp_path / "one")["samples"].items() for n in r["negatives"]}
    assert one == {key: n for key, n in first.items() if n["max_similarity"] < limit}

    summary = mine_negatives(qa_folder, tmp_path / "none", **{**SETTINGS, "threshold": -1.0})
    assert summary["mined"] == 6 and summary["negatives"] == 0 and summary["positives"] == 12
    for record in manifest(tmp_path / "none")["samples"].values():
        assert record["rejected"]["too_similar"] > 0  # every candidate was tried and refused
    assert not list((tmp_path / "none" / "frames_neg").rglob("*.png"))


def test_same_settings_same_manifest_whatever_the_sample_order(qa_folder: Path, mined: tuple[Path, dict],
                                                               tmp_path: Path) -> None:
    reference = manifest(mined[0])
    mine_negatives(qa_folder, tmp_path / "again", **SETTINGS)
    assert manifest(tmp_path / "again") == reference
    reversed_file = tmp_path / "reversed.json"
    reversed_file.write_text(json.dumps({"data": list(qa_data(qa_folder).values())[::-1]}), encoding="utf-8")
    mine_negatives(qa_folder, tmp_path / "reversed", json_path=reversed_file, **SETTINGS)
    assert manifest(tmp_path / "reversed")["samples"] == reference["samples"]
    mine_negatives(qa_folder, tmp_path / "seed1", **{**SETTINGS, "seed": 1})
    other = manifest(tmp_path / "seed1")["samples"]
    assert [r["negatives"] for r in other.values()] != [r["negatives"] for r in reference["samples"].values()]
    assert [r["positives"] for r in other.values()] == [r["positives"] for r in reference["samples"].values()]


def test_resume_mines_only_the_missing_sample(qa_folder: Path, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    mine_negatives(qa_folder, tmp_path, **SETTINGS)
    before = manifest(tmp_path)
    gone = sorted(before["samples"])[2]
    kept = tmp_path / "samples" / f"{sorted(before['samples'])[0]}.json"
    kept_mtime = kept.stat().st_mtime_ns
    (tmp_path / "samples" / f"{gone}.json").unlink()
    shutil.rmtree(tmp_path / "frames_true" / gone)
    shutil.rmtree(tmp_path / "frames_neg" / gone, ignore_errors=True)
    with caplog.at_level(logging.INFO, logger="lavis.datasets.frame_mining"):
        summary = mine_negatives(qa_folder, tmp_path, **SETTINGS)
    assert (summary["mined"], summary["skipped"], summary["errors"]) == (1, 5, 0)
    assert manifest(tmp_path) == before
    assert kept.stat().st_mtime_ns == kept_mtime
    assert (tmp_path / "frames_true" / gone).is_dir()
    assert "6 samples, 1 mined, 5 skipped as done, 0 errors" in caplog.records[-1].getMessage()
    # A sample killed between its frames and its record is redone without leftovers of that attempt.
    redo = sorted(before["samples"])[4]
    (tmp_path / "samples" / f"{redo}.json").unlink()
    stray = tmp_path / "frames_neg" / redo / "999999ms.png"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"partial")
    summary = mine_negatives(qa_folder, tmp_path, **SETTINGS)
    assert (summary["mined"], summary["skipped"]) == (1, 5)
    assert not stray.exists() and manifest(tmp_path) == before
    # Once all are done, a rerun mines nothing.
    summary = mine_negatives(qa_folder, tmp_path, **SETTINGS)
    assert (summary["mined"], summary["skipped"]) == (0, 6)


def test_other_settings_are_refused(qa_folder: Path, tmp_path: Path) -> None:
    mine_negatives(qa_folder, tmp_path, **SETTINGS)
    with pytest.raises(SettingsMismatchError, match="segments: 6 there, 4 now"):
        mine_negatives(qa_folder, tmp_path, **{**SETTINGS, "segments": 4})
    with pytest.raises(SettingsMismatchError, match="embedder"):
        mine_negatives(qa_folder, tmp_path, embedder={"name": "pixels", "size": 8}, **SETTINGS)
    (tmp_path / "settings.json").unlink()  # the manifest's copy still guards the folder
    with pytest.raises(SettingsMismatchError, match="threshold"):
        mine_negatives(qa_folder, tmp_path, **{**SETTINGS, "threshold": 0.5})


def test_bad_samples_become_errors_and_are_retried(qa_folder: Path, tmp_path: Path) -> None:
    folder = copy_qa(qa_folder, tmp_path)
    items = list(qa_data(folder).values())
    corrupt, missing = items[0], items[1]
    original = (folder / corrupt["video_path"]).read_bytes()
    (folder / corrupt["video_path"]).write_bytes(np.random.default_rng(0).bytes(len(original)))
    (folder / missing["video_path"]).unlink()
    items.append({**items[2], "id": "late", "support_frames": [DURATION + 2.0]})
    items.append({**items[2], "id": "../escape"})
    items.append({**items[2], "id": "no_support", "support_frames": []})
    write_qa(folder, items)
    out = tmp_path / "out"

    proc = run_cli("--input_folder", str(folder), "--output_folder", str(out), "--segments", "6",
                   "--min_gap", "0.5")
    assert proc.returncode == 1, proc.stderr
    assert "5 of 9 samples failed" in proc.stderr and "Traceback" not in proc.stderr
    result = manifest(out)
    errors = result["errors"]
    assert set(errors) == {corrupt["id"], missing["id"], "late", "../escape", "no_support"}
    assert corrupt["video_path"] in errors[corrupt["id"]] and "not a readable video" in errors[corrupt["id"]]
    assert "does not exist" in errors[missing["id"]]
    assert "beyond the video's end" in errors["late"]
    assert "path separator" in errors["../escape"]
    assert set(result["samples"]) == {item["id"] for item in items[2:6]}
    assert not (tmp_path / "escape.json").exists() and not (out / "escape.json").exists()
    assert not (out / "samples" / f"{corrupt['id']}.json").exists()

    # Errors are not marked done: once the videos are back, a rerun mines exactly those two.
    (folder / corrupt["video_path"]).write_bytes(original)
    shutil.copy(qa_folder / missing["video_path"], folder / missing["video_path"])
    summary = mine_negatives(folder, out, **SETTINGS)
    assert (summary["mined"], summary["skipped"], summary["errors"]) == (2, 4, 3)


def test_vietnamese_ids_and_questions_round_trip(qa_folder: Path, tmp_path: Path) -> None:
    folder = copy_qa(qa_folder, tmp_path)
    items = list(qa_data(folder).values())
    question = "Khi nào xe màu đỏ biến mất?"
    items[0] = {**items[0], "id": question, "question": question}
    items[1] = {**items[1], "id": "đường_phố_01", "question": "Biển báo nào xuất hiện đầu tiên?"}
    write_qa(folder, items)
    summary = mine_negatives(folder, tmp_path / "out", **SETTINGS)
    assert summary["errors"] == 0 and summary["mined"] == 6
    raw = (tmp_path / "out" / "manifest.json").read_bytes()
    assert question.encode("utf-8") in raw  # stored as UTF-8, not \u escapes
    records = json.loads(raw.decode("utf-8"))["samples"]
    assert records[question]["question"] == question and records[question]["id"] == question
    assert records["đường_phố_01"]["question"] == "Biển báo nào xuất hiện đầu tiên?"
    assert (tmp_path / "out" / "samples" / f"{question}.json").is_file()
    assert all((tmp_path / "out" / p["file"]).is_file() for p in records[question]["positives"])
    assert records[question]["positives"][0]["file"].startswith(f"frames_true/{question}/")


def test_the_qa_file_must_be_unambiguous(qa_folder: Path, tmp_path: Path) -> None:
    folder = copy_qa(qa_folder, tmp_path)
    (folder / "other.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"found 2 \(frame_selection.json, other.json\)"):
        mine_negatives(folder, tmp_path / "out")
    (folder / "other.json").unlink()
    (folder / "frame_selection.json").unlink()
    with pytest.raises(ValueError, match="found 0"):
        mine_negatives(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_end_to_end_and_its_usage_errors(qa_folder: Path, mined: tuple[Path, dict], tmp_path: Path) -> None:
    out = tmp_path / "cli"
    options = ["--segments", "6", "--min_gap", "0.5", "--threshold", "0.95", "--max_tries", "3", "--seed", "0"]
    proc = run_cli("--input_folder", str(qa_folder), "--output_folder", str(out), *options)
    assert proc.returncode == 0, proc.stderr
    assert "6 samples, 6 mined, 0 skipped as done, 0 errors" in proc.stderr
    assert manifest(out) == manifest(mined[0])  # the CLI and the function agree

    proc = run_cli("--input_folder", str(qa_folder), "--output_folder", str(out), *options[:-2], "--seed", "1")
    assert proc.returncode == 2 and "seed: 0 there, 1 now" in proc.stderr and "Traceback" not in proc.stderr

    proc = run_cli("--input_folder", str(qa_folder), "--output_folder", str(tmp_path / "dino"),
                   "--embedder", "dinov2", "--embedder_path", "/nonexistent")
    assert proc.returncode == 2, proc.stderr
    assert "/nonexistent" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "dino" / "settings.json").exists()  # a fixed rerun must not be refused


def test_a_support_time_between_frames_is_the_frame_on_screen() -> None:
    """Annotations need not fall on frame times: 1.26 s at 10 fps is frame 12 (shown 1.2-1.3 s)."""
    from lavis.datasets.frame_mining import check_positives
    from lavis.datasets.video import Frames, VideoInfo

    info = VideoInfo(30, 10.0, 3.0, 64, 64, tuple(i / 10 for i in range(30)))
    frame = np.zeros((1, 4, 4, 3), np.uint8)
    check_positives((1.26,), Frames(frame, [12], [1.2]), info, "v")
    check_positives((2.95,), Frames(frame, [29], [2.9]), info, "v")  # the last frame lasts until the end
    with pytest.raises(ValueError, match="shown from 1.1 s to 1.2 s"):
        check_positives((1.26,), Frames(frame, [11], [1.1]), info, "v")
    with pytest.raises(ValueError, match="beyond the video's end"):
        check_positives((3.5,), Frames(frame, [29], [2.9]), info, "v")
