"""What ``train.py`` and ``evaluate.py`` share: config -> process group -> job folder -> parts."""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import lavis
from lavis.common import dist
from lavis.common.checkpoint import CheckpointError
from lavis.common.config import Config, load_config
from lavis.common.io import atomic_open
from lavis.common.log import setup_logging
from lavis.common.registry import RegistryError, registry
from lavis.common.schema import ConfigError

logger = logging.getLogger(__name__)
PACKAGE_DIR = Path(lavis.__file__).resolve().parent
# What a user fixes in the config or on disk: an unknown key or name, a missing path, weights
# that do not fit the model. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ConfigError, RegistryError, CheckpointError, FileNotFoundError)


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg-path", required=True, help="run YAML (e.g. lavis/projects/...)")
    parser.add_argument(
        "--options", nargs="+", default=[], metavar="KEY=VALUE",
        help="override config keys, e.g. run.batch_size_train=4 model.model_type=caption_coco",
    )
    return parser.parse_args()


def exit_status(job: Callable[[], None]) -> int:
    """Run a CLI's job: 0 when it ends, 2 with one logged line for a user error (``USER_ERRORS``)."""
    try:
        job()
    except USER_ERRORS as err:
        logger.error("%s", err)
        return 2
    return 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def start_job(cfg_path: str, options: list[str]) -> tuple[Config, Path]:
    """Validate the config (before anything heavy), join the process group, make the job folder.

    The job id (a timestamp unless ``run.job_id`` is set) is chosen by rank 0 and broadcast, so
    every rank writes into the same ``run.output_dir/<job_id>/``.
    """
    env = dist.detect_env()
    setup_logging(env.rank)
    cfg = load_config(cfg_path, options)
    env = dist.init_distributed(cfg.run.dist_backend, cfg.run.dist_timeout_minutes)
    job_id = dist.broadcast_object(cfg.run.job_id or time.strftime("%Y%m%d%H%M%S"))
    job_dir = (Path(cfg.run.output_dir).expanduser() / job_id).resolve()
    if job_dir.is_relative_to(PACKAGE_DIR):
        raise ConfigError(f"run.output_dir resolves to {job_dir}, inside the lavis package; choose another")
    job_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(env.rank, job_dir)
    if env.rank == 0:
        with atomic_open(job_dir / "config.yaml") as f:
            f.write(cfg.to_yaml())
    logger.info("job %s: config layers %s", job_dir, " < ".join(cfg.layers))
    return cfg, job_dir


def build_runner(cfg: Config, job_dir: Path):
    """Task, datasets and model from the config, and the runner that drives them.

    Every rank builds the model from the same seed (identical weights, as FSDP sharding needs);
    afterwards each rank gets its own seed for dropout and sampling.
    """
    task = registry.get("task", cfg.run.task)(**cfg.task)
    task.check_ready(cfg)
    datasets = task.build_datasets(cfg)
    seed_everything(cfg.run.seed)
    model = task.build_model(cfg)
    seed_everything(cfg.run.seed + dist.get_rank())
    return registry.get("runner", cfg.run.runner)(cfg, task, model, datasets, job_dir)


def train_job(cfg_path: str, options: list[str]) -> None:
    """``train.py``: train (then test the best checkpoint), or only evaluate with ``run.evaluate``."""
    cfg, job_dir = start_job(cfg_path, options)
    try:
        runner = build_runner(cfg, job_dir)
        if cfg.run.evaluate:  # LAVIS's eval-only switch
            runner.evaluate(cfg.run.test_splits or cfg.run.valid_splits)
        else:
            runner.train()
            if cfg.run.test_splits:
                runner.evaluate_best(cfg.run.test_splits)
        dist.barrier()  # all ranks done before the group is torn down
    finally:
        dist.cleanup()
