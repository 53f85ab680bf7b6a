"""Evaluate a model: ``python -m torch.distributed.run --nproc_per_node=N evaluate.py --cfg-path X``.

Scores ``run.test_splits`` (or ``run.valid_splits``) with the weights named by ``run.checkpoint``
(or the model's own pretrained weights when it is unset).
"""

from __future__ import annotations

import logging

from lavis.common import dist
from lavis.common.launch import build_runner, exit_status, parse_args, start_job
from lavis.common.schema import ConfigError

logger = logging.getLogger("evaluate")


def evaluate_job(cfg_path: str, options: list[str]) -> None:
    cfg, job_dir = start_job(cfg_path, options)
    try:
        splits = cfg.run.test_splits or cfg.run.valid_splits
        if not splits:
            raise ConfigError("nothing to evaluate: set run.test_splits or run.valid_splits")
        build_runner(cfg, job_dir).evaluate(splits)
        dist.barrier()  # all ranks done before the group is torn down
        logger.info("evaluation done; results and metrics in %s", job_dir)
    finally:
        dist.cleanup()


def main() -> int:
    args = parse_args("Evaluate a LAVIS video captioning model.")
    return exit_status(lambda: evaluate_job(args.cfg_path, args.options))


if __name__ == "__main__":
    raise SystemExit(main())
