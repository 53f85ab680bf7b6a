"""Shared test helpers: the toy run config, in-process training and torchrun launches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TOY_CFG = ROOT / "tests" / "configs" / "toy_train.yaml"


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        env.pop(var, None)
    return env


def launch(script: str, options: list[str], nproc: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    """``train.py``/``evaluate.py`` on the toy config, plainly (nproc=1) or under torchrun."""
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += [str(ROOT / script), "--cfg-path", str(TOY_CFG), "--options", *options]
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def train_in_process(output_dir: Path, job_id: str, *options: str, test: bool = False) -> Path:
    """Run the toy training in this process; returns the job folder."""
    from lavis.common.launch import build_runner, start_job

    cfg, job_dir = start_job(
        str(TOY_CFG), [f"run.output_dir={output_dir}", f"run.job_id={job_id}", *options]
    )
    runner = build_runner(cfg, job_dir)
    runner.train()
    if test:
        runner.evaluate_best(cfg.run.test_splits)
    return job_dir


def read_metrics(job_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.fixture
def marked():
    """Processes started with ``marked.env`` are found by ``marked.alive()``; any left when the
    test ends are killed (and the test fails if a job left some behind)."""
    from tests.procs import MarkedProcesses

    processes = MarkedProcesses(subprocess_env())
    yield processes
    survivors = processes.alive()
    processes.kill_all()
    assert not survivors, f"processes left running by the test: {survivors}"
