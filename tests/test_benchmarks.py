"""The benchmark harness (benchmarks/, BENCHMARKS.md): every case runs at ``--size tiny`` through
the CLI and reports what the JSON promises (the GPU cases on the CPU, with tiny models); at full
size the GPU cases skip without a GPU; the limits quoted next to GPU figures are checked."""

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
GPU_CASES = ["gpu_captioning", "gpu_end_to_end", "gpu_training"]


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


@pytest.mark.parametrize("name", CPU_CASES + GPU_CASES)
def test_case_medians_and_same_run_ratios(tiny_run, name):
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


def test_gpu_cases_run_their_whole_path_at_tiny_size(tiny_run):
    cases = tiny_run[0]["cases"]
    captioning = {(v["group"], v["name"]) for v in cases["gpu_captioning"]["variants"]}
    assert {("1 beam", "batch 2"), ("5 beams", "batch 2")} <= captioning
    versus = [v for v in cases["gpu_captioning"]["variants"] if v["group"].endswith("vs transformers")]
    assert [v["name"] for v in versus] == ["transformers BLIP-2, frame by frame", "project, 8 frames per caption"]
    assert [v["info"]["captions_per_video"] for v in versus] == [8, 1]
    end_to_end = cases["gpu_end_to_end"]
    assert [v["items"] for v in end_to_end["variants"]] == [4, 4, 4]  # every video captioned, none failed
    training = cases["gpu_training"]
    assert "failed" not in training["info"], training["info"].get("failed")
    assert set(training["groups"]) == {"opt-2.7b", "flan-t5-xl + LoRA", "vicuna-7b + FSDP (1 GPU)"}
    assert all(group["weights_updated"] for group in training["groups"].values())  # the optimizer steps
    for row in training["variants"]:
        assert math.isfinite(row["info"]["loss"]) and row["info"]["loss"] > 0  # a real cross-entropy
    lora = training["groups"]["flan-t5-xl + LoRA"]
    assert lora["trainable_parameters"] < training["groups"]["opt-2.7b"]["trainable_parameters"] + 10_000


@pytest.mark.skipif(torch.cuda.is_available(), reason="the skip path is for machines without a GPU")
@pytest.mark.parametrize("name", GPU_CASES)
def test_gpu_cases_skip_at_full_size_without_a_gpu(name, tmp_path):
    from benchmarks import load_case
    from benchmarks.harness import Context

    result = load_case(name).run(Context(size="full", repeats=1, warmup=0, workdir=tmp_path))
    assert result.skipped == "no GPU on this machine" and result.groups == []


def test_limits_quoted_next_to_gpu_figures():
    from benchmarks import gpu_models as gm

    assert gm.llm_parameters("opt-2.7b") == {"total": 2_651_596_800, "matmul": 2_651_596_800}  # tied output layer
    # FlanT5-XL: 2.85B with its own output layer; transformers 5 ties it when building from a config
    # (loading a checkpoint that has one unties it), 66M fewer: the same FLOPs either way
    assert 2.78e9 < gm.llm_parameters("flan-t5-xl")["total"] < 2.86e9
    vicuna = gm.llm_parameters("vicuna-7b")
    assert vicuna["total"] == 6_738_415_616 and vicuna["total"] - vicuna["matmul"] == 32000 * 4096
    assert 4.0e12 < gm.vit_flops_per_video() < 4.4e12  # ~520 GFLOPs per 224 px frame
    peak = gm.gpu_peak("NVIDIA H200")
    assert peak == pytest.approx((989e12, 4.8e12))
    assert gm.gpu_peak("NVIDIA H100 80GB HBM3") == pytest.approx((989e12, 3.35e12))
    assert gm.gpu_peak("NVIDIA H100 PCIe") == pytest.approx((756e12, 2.0e12))
    assert gm.gpu_peak("NVIDIA A100-SXM4-80GB") == pytest.approx((312e12, 2.039e12))
    assert gm.gpu_peak("Tesla T4") is None
    one = gm.captioning_limit(1, 1, peak)
    assert one["vit_limit_videos_per_s"] == pytest.approx(989e12 / gm.vit_flops_per_video())
    # one video, greedy: 30 steps each reading OPT's 5.3 GB of bf16 weights bound it, not the ViT
    assert one["decode_limit_videos_per_s"] == pytest.approx(4.8e12 / (30 * 2 * 2_651_596_800), rel=0.01)
    assert one["limit_videos_per_s"] < one["decode_limit_videos_per_s"] < one["vit_limit_videos_per_s"]
    big = gm.captioning_limit(64, 5, peak)  # batching shares the weight reads: the ViT bounds it now
    assert big["decode_limit_videos_per_s"] > big["vit_limit_videos_per_s"] == one["vit_limit_videos_per_s"]
    per_sample = gm.training_flops_per_sample("opt-2.7b", text_tokens=20)
    assert per_sample == pytest.approx(gm.vit_flops_per_video() + 4 * 2_651_596_800 * 52)


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
