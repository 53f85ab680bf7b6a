"""Caption and tag a video collection: ``python -m lavis.pipeline --config pipeline.yaml ...``.

    python -m lavis.pipeline --config lavis/projects/pipeline/camera_motion.yaml \\
        --dataset_csv clips.csv --tar_folder archives/ --output_csv meta.csv --batch_size 4 --num_workers 4
    python -m lavis.pipeline --config ... --csv paths.csv --output_csv meta.csv        # Open-Sora path CSV
    python -m torch.distributed.run --nproc_per_node=8 -m lavis.pipeline ...           # shards by rank
    python -m torch.distributed.run --nproc_per_node=8 -m lavis.pipeline --tp_size 2 ... # 4 groups of 2 GPUs

Work files live in ``--work_dir`` (default ``<output_csv>.work``); a rerun resumes there. Rank 0
writes ``meta.csv``, ``meta.jsonl`` (and ``meta.parquet`` with pyarrow) and ``meta.report.json``
(counts, unreadable archives, refused archive members, members without a row, rows without a
video). Exit status: 0 when every row was processed without error, 1 when some failed or were
missing or an archive was unreadable, 2 on bad input.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from lavis.common import dist
from lavis.common.io import atomic_write_json
from lavis.common.log import setup_logging
from lavis.common.schema import ConfigError
from lavis.inference.loading import LoadError
from lavis.inference.records import is_failure
from lavis.pipeline.config import load_pipeline_config
from lavis.pipeline.job import PipelineJob
from lavis.pipeline.parallel import make_layout
from lavis.pipeline.outputs import write_outputs
from lavis.pipeline.sources import Row, read_dataset_csv, read_path_csv

logger = logging.getLogger("lavis.pipeline")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lavis.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="pipeline YAML (lavis/projects/pipeline/...)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset_csv", help="video_id,start,end,duration rows (with --tar_folder)")
    source.add_argument("--csv", help="a CSV with a 'path' column (Open-Sora style)")
    parser.add_argument("--tar_folder", help="folder of .tar.gz archives of '{video_id} ({start}-{end}).ext' clips")
    parser.add_argument("--output_csv", required=True)
    parser.add_argument("--work_dir", help="shard files and done markers (default: <output_csv>.work)")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--num_workers", type=int, default=4, help="decoding processes per rank (0: decode inline)")
    parser.add_argument("--retry_failed", action="store_true", help="process again the rows that failed before")
    parser.add_argument("--tp_size", "--tp-size", type=int, default=1,
                        help="ranks that split each large model between them (transformers tp_plan='auto')")
    parser.add_argument("--dp_size", "--dp-size", type=int, help="data-parallel groups (default: ranks / tp_size)")
    parser.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="override pipeline YAML keys")
    parser.add_argument("--dist_timeout_minutes", type=float, default=24 * 60)
    args = parser.parse_args(argv)
    if args.dataset_csv and not args.tar_folder:
        parser.error("--dataset_csv needs --tar_folder")
    return args


def read_rows(args: argparse.Namespace) -> list[Row]:
    return read_dataset_csv(args.dataset_csv) if args.dataset_csv else read_path_csv(args.csv)


def finish(job: PipelineJob, rows: list[Row], output_csv: str, counts: list[dict[str, Any]], started: float) -> int:
    """Rank 0: every row's record in CSV order, the report and the summary line; the exit status."""
    records = job.all_records()
    ordered = [records[r.id] for r in rows if r.id in records]
    missing = [r.id for r in rows if r.id not in records]
    written = write_outputs(ordered, output_csv)
    shard_reports = job.shard_reports()
    failed = sum(map(is_failure, ordered))
    unreadable = [{"shard": s["shard"], "archive": s["archive"], "reason": s["unreadable"]}
                  for s in shard_reports if "unreadable" in s]
    report = {
        "rows": len(rows), "processed": len(ordered) - failed, "failed": failed, "missing": missing,
        "unreadable_archives": unreadable,
        "refused_members": [dict(r, shard=s["shard"]) for s in shard_reports for r in s["refused"]],
        "unmatched_members": [m for s in shard_reports for m in s["unmatched"]],
        "this_run": {k: sum(c[k] for c in counts) for k in ("done", "failed", "skipped", "shards_skipped")},
        "config_hash": job.config_hash,
    }
    atomic_write_json(report, Path(output_csv).with_suffix(".report.json"))
    if missing:
        logger.warning("%d CSV rows have no video (e.g. %r); listed in the report", len(missing), missing[0])
    for archive in unreadable:
        logger.warning("archive %s is unreadable (%s): rerun once it is replaced", archive["archive"], archive["reason"])
    wall = time.time() - started
    logger.info(
        "pipeline done: %d rows, %d processed, %d failed, %d without a video, %d archive members refused, "
        "%d without a row; this run %d clips in %.1f s -> %s",
        len(rows), report["processed"], failed, len(missing), len(report["refused_members"]),
        len(report["unmatched_members"]), report["this_run"]["done"] + report["this_run"]["failed"], wall,
        ", ".join(map(str, written)),
    )
    return 1 if failed or missing or unreadable else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(dist.detect_env().rank)
    started = time.time()
    try:
        config = load_pipeline_config(args.config, args.options)
        rows = read_rows(args)
    except (ConfigError, OSError, ValueError) as err:
        logger.error("%s", err)
        return 2
    dist.init_distributed(timeout_minutes=args.dist_timeout_minutes)
    try:
        try:
            layout = make_layout(args.tp_size, args.dp_size)
            job = PipelineJob(config, rows, args.work_dir or f"{args.output_csv}.work", tar_folder=args.tar_folder,
                              batch_size=args.batch_size, num_workers=args.num_workers, retry_failed=args.retry_failed,
                              layout=layout)
            counts = job.run()
        except (LoadError, ValueError, OSError) as err:  # the same on every rank: same config, same files
            logger.error("%s", err)
            return 2
        counts = dist.all_gather_object(counts)
        status = finish(job, rows, args.output_csv, counts, started) if dist.get_rank() == 0 else 0
        return dist.broadcast_object(status)
    finally:
        dist.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
