"""Train a model: ``python -m torch.distributed.run --nproc_per_node=N train.py --cfg-path X``."""

from __future__ import annotations

import logging

from lavis.common import dist
from lavis.common.launch import build_runner, parse_args, start_job

logger = logging.getLogger("train")


def main() -> None:
    args = parse_args("Train a LAVIS video captioning model.")
    cfg, job_dir = start_job(args.cfg_path, args.options)
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


if __name__ == "__main__":
    main()
