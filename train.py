"""Train a model: ``python -m torch.distributed.run --nproc_per_node=N train.py --cfg-path X``."""

from __future__ import annotations

from lavis.common.launch import exit_status, parse_args, train_job


def main() -> int:
    args = parse_args("Train a LAVIS video captioning model.")
    return exit_status(lambda: train_job(args.cfg_path, args.options))


if __name__ == "__main__":
    raise SystemExit(main())
