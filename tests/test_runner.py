import json

import pytest
import torch

from lavis.common.schema import ConfigError
from tests.conftest import launch, load_weights, read_metrics, train_in_process


def test_training_learns_and_writes_complete_results(tmp_path):
    job = train_in_process(tmp_path, "job", test=True)
    records = read_metrics(job)
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < losses[0]
    test = next(r for r in records if r.get("split") == "test")
    assert test["accuracy"] > 0.5  # 4 classes: chance is 0.25
    results = json.loads((job / "result" / "test_best.json").read_text())
    assert [r["id"] for r in results] == [f"test{i}" for i in range(61)]
    assert (job / "config.yaml").is_file() and (job / "log_rank0.txt").is_file()
    assert "training done" in (job / "log_rank0.txt").read_text()


@pytest.mark.parametrize("options", [[], ["run.num_workers=1", "run.accum_grad_iters=2"]],
                         ids=["plain", "workers+accum"])
def test_resumed_run_ends_with_identical_weights(tmp_path, options):
    common = ["run.keep_last_checkpoints=0", *options]
    full = train_in_process(tmp_path, "full", *common)
    resumed = train_in_process(
        tmp_path, "resumed", *common, f"run.resume_ckpt_path={full / 'checkpoint_0000020.pth'}"
    )
    a, b = load_weights(full / "checkpoint_0000040.pth"), load_weights(resumed / "checkpoint_0000040.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first = train_in_process(tmp_path, "short", *common, "run.max_steps=20")
    # sanity: the schedule depends on max_steps, so a 20-step run is *not* the first half
    assert not torch.equal(load_weights(first / "checkpoint_0000020.pth")["head.0.weight"],
                           load_weights(full / "checkpoint_0000020.pth")["head.0.weight"])


def test_best_checkpoint_uses_configured_split_metric_and_mode(tmp_path):
    job = train_in_process(
        tmp_path, "best", "run.valid_splits=[val,test]", "run.best_split=test",
        "run.best_metric=loss", "run.best_mode=min", "run.report_loss=true", "run.val_freq=5",
    )
    evals = [r for r in read_metrics(job) if r.get("split") == "test"]
    best = min(evals, key=lambda r: r["loss"])
    saved = torch.load(job / "checkpoint_best.pth", weights_only=True)["train_state"]
    assert saved["best_step"] == best["step"] and saved["best_metric"] == pytest.approx(best["loss"])


def test_checkpoints_are_pruned_to_the_last_n(tmp_path):
    job = train_in_process(tmp_path, "prune", "run.save_freq=5", "run.keep_last_checkpoints=2")
    assert sorted(p.name for p in job.glob("checkpoint_*.pth")) == [
        "checkpoint_0000035.pth", "checkpoint_0000040.pth", "checkpoint_best.pth"]
    assert not list(job.glob(".*tmp"))


def test_unknown_best_metric_is_named(tmp_path):
    with pytest.raises(KeyError, match="best_metric='cider'.*available: accuracy, agg_metrics"):
        train_in_process(tmp_path, "bad", "run.best_metric=cider")


def test_output_dir_inside_the_package_is_refused(tmp_path):
    from lavis.common.launch import PACKAGE_DIR

    with pytest.raises(ConfigError, match="inside the lavis package"):
        train_in_process(PACKAGE_DIR, "x")


def test_evaluate_script_reproduces_validation_metrics(tmp_path):
    job = train_in_process(tmp_path, "train", "run.test_splits=[]")
    final_val = [r for r in read_metrics(job) if r.get("split") == "val"][-1]
    launch("evaluate.py", [f"run.output_dir={tmp_path}", "run.job_id=eval", "run.test_splits=[val]",
                           f"run.checkpoint={job / 'checkpoint_0000040.pth'}"])
    evaluated = next(r for r in read_metrics(tmp_path / "eval") if r.get("split") == "val")
    assert evaluated["accuracy"] == final_val["accuracy"]
