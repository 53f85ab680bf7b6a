"""The tagging stage: answers parsed into lists; a tiny random LLM through the real loading path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from lavis.pipeline.__main__ import main
from lavis.pipeline.outputs import read_table
from lavis.pipeline.stages.tagging import TaggingStage, main as tagging_main, parse_list
from tests.conftest import ROOT
from tests.tiny_models import make_tokenizer


@pytest.mark.parametrize("answer, expected", [
    ("car, Person, traffic light.", ["car", "person", "traffic light"]),
    ('Sure: ["dog", "ball", "dog"] is the list', ["dog", "ball"]),
    ("1. running\n2. jumping; waving\n\nNote: nothing else", ["running", "jumping", "waving"]),
    ("- a red star\n* a circle", ["a red star", "a circle"]),
    ("   ", []),
])
def test_answers_become_clean_lists(answer, expected):
    assert parse_list(answer) == expected


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("llm")
    make_tokenizer(folder, "llama")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


def test_prompts_carry_the_caption_and_batches_match_single_runs(tiny_llm):
    stage = TaggingStage(str(tiny_llm), keys=["objects", "actions"], max_new_tokens=6)
    stage.setup(torch.device("cpu"))
    assert "a red circle moves left" in stage.prompt("objects", "a red circle moves left")
    captions = ["a red circle moves left", "the dog is playing with a ball on stage"]
    together = stage.tag(captions)
    assert together == [stage.tag([c])[0] for c in captions]  # left padding: batch-mates change nothing
    assert all(set(t) == {"objects", "actions"} and all(isinstance(v, list) for v in t.values()) for t in together)
    with pytest.raises(ValueError, match="must contain"):
        TaggingStage(str(tiny_llm), keys=["objects"], prompts={"objects": "no placeholder"})


def caption_then_tag(tiny_llm: Path, tmp_path: Path, videos: int) -> tuple[Path, Path]:
    """A path CSV of demo videos and a pipeline YAML: the demo captioner, then tagging."""
    paths = tmp_path / "paths.csv"
    chosen = sorted((ROOT / "lavis" / "demo" / "videos").glob("*.mp4"))[:videos]
    paths.write_text("path\n" + "\n".join(str(v) for v in chosen) + "\n")
    config = tmp_path / "p.yaml"
    config.write_text(
        "pipeline:\n  stages:\n"
        "    - {name: video_caption, checkpoint: demo, num_beams: 1, max_length: 12, min_length: 3}\n"
        f"    - {{name: tagging, path: '{tiny_llm}', max_new_tokens: 5}}\n"
    )
    return paths, config


def test_in_the_pipeline_after_captions_and_alone_on_a_csv(tiny_llm, tmp_path):
    paths, config = caption_then_tag(tiny_llm, tmp_path, videos=2)
    out = tmp_path / "meta.csv"
    assert main(["--config", str(config), "--csv", str(paths), "--output_csv", str(out), "--num_workers", "0"]) == 0
    rows = read_table(out.with_suffix(".jsonl"))
    assert all(r["caption"] and isinstance(r["objects"], list) and isinstance(r["actions"], list) for r in rows)

    alone = tmp_path / "alone.yaml"
    alone.write_text(f"pipeline:\n  stages:\n    - {{name: tagging, path: '{tiny_llm}'}}\n")
    assert main(["--config", str(alone), "--csv", str(paths), "--output_csv", str(tmp_path / "x.csv"), "--num_workers", "0"]) == 1
    assert all("run a caption stage" in r["errors"]["tagging"] for r in read_table(tmp_path / "x.jsonl"))

    meta = tmp_path / "meta_in.csv"
    with open(meta, "w", newline="") as f:
        csv.writer(f).writerows([["id", "caption"], ["a", "a red circle moves left"], ["b", ""]])
    assert tagging_main([str(meta), "--model", str(tiny_llm), "--key", "objects", "--output_prefix", str(tmp_path / "meta")]) == 0
    tagged = list(csv.DictReader(open(tmp_path / "meta_objects.csv")))
    assert [r["id"] for r in tagged] == ["a", "b"] and isinstance(json.loads(tagged[0]["objects"]), list)
    assert tagged[1]["objects"] == ""
    assert tagging_main([str(meta), "--model", str(tmp_path / "none"), "--key", "objects"]) == 2


@pytest.mark.parametrize("ranks", [2, 4], ids=["tp2", "dp2_tp2"])
def test_tensor_parallel_tagging_gives_the_single_process_rows(tiny_llm, tmp_path, ranks):
    """Ranks in groups of two splitting the LLM (tp_size 2, transformers' tp_plan on a gloo mesh;
    with 4 ranks, two such groups share the shards) write the same rows as one process, once each
    (only a group's first rank writes)."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    paths, config = caption_then_tag(tiny_llm, tmp_path, videos=4)
    shards = ["--options", "pipeline.rows_per_shard=2"]  # two shards: one per group with 4 ranks
    single = tmp_path / "one.csv"
    assert main(["--config", str(config), "--csv", str(paths), "--output_csv", str(single), "--num_workers", "0",
                 *shards]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", "-m",
                "lavis.pipeline", "--config", str(config), "--csv", str(paths), "--num_workers", "0"]
    proc = subprocess.run([*torchrun, "--output_csv", str(tmp_path / "tp.csv"), "--tp_size", "2", *shards], cwd=ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "tp.csv").read_text() == single.read_text()
    report = json.loads((tmp_path / "tp.report.json").read_text())
    assert report["this_run"]["done"] == 4  # counted once, not once per rank of a group
    if ranks == 2:
        bad = subprocess.run([*torchrun, "--output_csv", str(tmp_path / "bad.csv"), "--tp_size", "3"], cwd=ROOT,
                             env=subprocess_env(), capture_output=True, text=True, timeout=300)
        assert bad.returncode != 0 and "must divide" in bad.stderr  # each rank exits 2; torchrun reports 1
