"""The benchmark harness (benchmarks/, BENCHMARKS.md): every CPU case runs at ``--size tiny``
through the CLI and reports what the JSON promises; the GPU case's model builds at a tiny size."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import CASE_MODULES
from benchmarks.harness import Group, Timing, Variant, measure

ROOT = Path(__file__).resolve().parents[1]
CPU_CASES = ["frame_sampling", "data_loading", "cider", "caption_metrics", "batch_inference"]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[dict, str]:
    tmp = tmp_path_factory.mktemp("bench")
    proc = run_cli("run", "--size", "tiny", "--out", str(tmp / "results.json"), "--workdir", str(tmp / "work"))
    if proc.returncode != 0:
        pytest.fail(f"benchmarks exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads((tmp / "results.json").read_text()), proc.stdout


def test_report_has_every_case_and_the_environment(tiny_run):
    report, stdout = tiny_run
    assert list(report["cases"]) == list(CASE_MODULES)
    assert report["size"] == "tiny" and report["repeats"] == 1
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    assert report["machine"]["ram_gib"] > 0
    for package in ("python", "torch", "transformers", "av", "opencv", "pycocoevalcap"):
        assert report["versions"][package], package
    assert "commit" in report["git"]
    assert report["command"][1:4] == ["-m", "benchmarks", "run"]
    assert "| case | group | variant |" in stdout


@pytest.mark.parametrize("name", CPU_CASES)
def test_cpu_case_medians_and_same_run_ratios(tiny_run, name):
    case = tiny_run[0]["cases"][name]
    assert case["status"] == "ok", case.get("reason")
    measured = [v for v in case["variants"] if v["skipped"] is None]
    assert len(measured) >= 2
    for group, info in case["groups"].items():
        rows = {v["name"]: v for v in measured if v["group"] == group}
        base = rows[info["baseline"]]
        assert base["baseline"] and base["ratio"] == pytest.approx(1.0)
        for row in rows.values():
            assert row["median_s"] > 0 and row["min_s"] <= row["median_s"] <= row["max_s"]
            assert len(row["times_s"]) == 1
            assert row["ratio"] == pytest.approx(base["median_s"] / row["median_s"])
    assert "target" in case and "target_met" in case


def test_correctness_checks(tiny_run):
    cases = tiny_run[0]["cases"]
    assert cases["cider"]["checks"]["cider_identical"] is True
    assert cases["cider"]["checks"]["eval_cider_max_abs_diff"] < 1e-9
    assert cases["caption_metrics"]["checks"]["same_scores"] is True
    assert cases["batch_inference"]["checks"]["same_captions"] is True
    assert cases["frame_sampling"]["checks"]["project_frames_exact"] is True
    frame_rows = cases["frame_sampling"]["variants"]
    project = [v for v in frame_rows if v["name"].startswith("lavis")]
    assert len(project) == 2 and all(v["info"]["shape"][1:] == [224, 224, 3] for v in project)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the skip path is for machines without a GPU")
def test_gpu_case_is_skipped_without_a_gpu(tiny_run):
    case = tiny_run[0]["cases"]["gpu_captioning"]
    assert case["status"] == "skipped" and case["reason"] == "no GPU on this machine"
    assert case["variants"] == []


def test_gpu_case_model_builds_and_captions_at_tiny_size(tmp_path):
    from benchmarks import gpu_captioning as gpu

    model = gpu.build_captioner("tiny", "cpu", tmp_path / "tok")
    assert next(model.language.model.parameters()).dtype == torch.bfloat16
    captions = gpu.caption(model, batch=2, beams=2, image_size=gpu.SIZES["tiny"].vision["image_size"], device="cpu")
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    model.train()
    trainable = gpu.trainable_parameters(model)
    assert trainable and not any(p.requires_grad for p in model.vision.parameters())
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    loss = gpu.train_step(model, optimizer, batch=2, image_size=gpu.SIZES["tiny"].vision["image_size"], device="cpu")
    assert math.isfinite(loss) and loss > 0  # a real cross-entropy
    assert any(not torch.equal(b, p) for b, p in zip(before, trainable))
    real = gpu.SIZES["real"]
    assert 2.6e9 < gpu.opt_parameters(real.opt) < 2.7e9  # OPT-2.7B
    assert 4.0e12 < gpu.vit_flops_per_video(real.vision) < 4.4e12  # ~520 GFLOPs per 224 px frame
    assert gpu.gpu_peak("NVIDIA H100 80GB HBM3") == pytest.approx((989e12, 3.35e12))
    assert gpu.gpu_peak("NVIDIA H100 PCIe") == pytest.approx((756e12, 2.0e12))
    assert gpu.gpu_peak("NVIDIA H200") == pytest.approx((989e12, 4.8e12))
    assert gpu.gpu_peak("NVIDIA A100-SXM4-80GB") == pytest.approx((312e12, 2.039e12))
    assert gpu.gpu_peak("Tesla T4") is None


def test_ratio_is_baseline_over_variant_and_measure_counts_calls():
    group = Group("g", "base", [Variant("base", Timing([2.0, 4.0, 3.0])), Variant("fast", Timing([1.0])),
                                Variant("off", skipped="missing")])
    assert group.ratio("fast") == pytest.approx(3.0)
    assert group.ratio("base") == 1.0 and group.ratio("off") is None
    calls = []
    timing, last = measure(lambda: calls.append(1) or len(calls), repeats=3, warmup=2)
    assert len(calls) == 5 and len(timing.times) == 3 and last == 5


def test_cli_lists_cases_and_refuses_unknown_ones():
    listed = run_cli("list", timeout=120)
    assert listed.returncode == 0
    assert all(name in listed.stdout for name in CASE_MODULES)
    unknown = run_cli("run", "no_such_case", "--out", "/dev/null", timeout=60)
    assert unknown.returncode == 2 and "unknown case" in unknown.stderr
