"""Caption every video in a folder: resumable, sharded over ranks, bad files recorded.

    python lavis/projects/blip2_timesformer/batch_inference.py --video_dir videos/ \\
        --output_file captions.json --html gallery/
    python -m torch.distributed.run --nproc_per_node=8 lavis/projects/blip2_timesformer/batch_inference.py ...

Each rank appends its results to ``<output_file>.parts/rank*.jsonl`` after every batch; rank 0
merges the parts into ``--output_file`` (a JSON list sorted by video) at the end. A rerun skips
videos already in the parts (failed ones too, unless ``--retry_failed``). A part file has one
writer: a run started while another still writes the same parts stops at once, naming the file.
Ranks and their decoding workers end within a second of torchrun's death. Exit status: 0 when
every video has a caption, 1 when some failed, 2 on a user error.
"""

from __future__ import annotations

import argparse
import logging
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lavis.common import dist
from lavis.common.io import FileBusyError, check_no_writer
from lavis.common.log import progress, setup_logging
from lavis.inference.cli_args import add_generation_args, add_model_args, generation_kwargs, processor_overrides
from lavis.inference.gallery import write_gallery
from lavis.common.dist import resolve_device
from lavis.inference.loading import LoadedCaptioner, LoadError, load_captioner
from lavis.inference.records import PartFile, Record, is_failure, merge, read_records
from lavis.inference.video_folder import VideoFolder, batched, list_videos, video_loader

logger = logging.getLogger("batch_inference")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video_dir", required=True)
    parser.add_argument("--output_file", required=True, help="JSON list of {video, caption} / {video, error}")
    parser.add_argument("--video_ext", default="mp4", help="extension(s), comma-separated: mp4,webm,mkv")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_workers", type=int, default=2, help="decoding processes per rank")
    parser.add_argument("--retry_failed", action="store_true", help="caption again the videos that failed before")
    parser.add_argument("--html", metavar="DIR", help="also write a browsable gallery to DIR/index.html")
    parser.add_argument("--dist_timeout_minutes", type=float, default=24 * 60,
                        help="how long ranks wait for each other (the fastest waits for the slowest at the end)")
    add_model_args(parser)
    add_generation_args(parser)
    return parser.parse_args(argv)


def parts_dir(output_file: str) -> Path:
    return Path(output_file + ".parts")


def plan(args: argparse.Namespace) -> tuple[list[str], list[str]] | str:
    """Every video in the folder and those without a record yet (or with a failure, under
    ``--retry_failed``); or the reason there is no plan (such as a part file another run is
    still writing), so rank 0 can tell the other ranks instead of leaving them waiting."""
    try:
        names = list_videos(args.video_dir, args.video_ext)
        parts = sorted(parts_dir(args.output_file).glob("rank*.jsonl"))
        for part in parts:  # a run still writing them (of any world size) would make the plan stale
            check_no_writer(part)
        done = read_records(parts)
    except (OSError, ValueError) as err:
        return str(err)
    return names, [n for n in names if n not in done or (args.retry_failed and is_failure(done[n]))]


def caption_batch(
    captioner: LoadedCaptioner, batch: dict[str, Any], generation: dict[str, Any], seed: int | None = None
) -> list[Record]:
    """Records for one batch; a batch the model cannot take (e.g. out of memory) is retried one
    video at a time so only the videos that fail by themselves get error records. With ``seed``,
    a sampled caption depends only on the seed and the video's name (see ``video_seed``), not on
    the batch, the rank or the retry that captions it."""
    records: list[Record] = [{"video": item["video"], "error": item["error"]} for item in batch["failed"]]
    if batch["pixels"] is None:
        return records
    samples: dict[str, Any] = {}
    if seed is not None:
        samples["seed"] = [video_seed(seed, item["video"]) for item in batch["decoded"]]
    try:
        samples["video"] = batch["pixels"].to(captioner.model.device)
        with torch.inference_mode():
            captions = captioner.model.generate(samples, **generation)
    except (RuntimeError, ValueError) as err:
        if len(batch["decoded"]) == 1:
            return records + [{"video": batch["decoded"][0]["video"], "error": f"generation failed: {err}"}]
        logger.warning("generation failed for a batch of %d (%s); retrying one by one", len(batch["decoded"]), err)
        for k, item in enumerate(batch["decoded"]):
            single = {"pixels": batch["pixels"][k : k + 1], "decoded": [item], "failed": []}
            records += caption_batch(captioner, single, generation, seed)
        return records
    per_video = generation["num_captions"]
    for k, item in enumerate(batch["decoded"]):
        mine = captions[k * per_video : (k + 1) * per_video]
        text = {"caption": mine[0]} if per_video == 1 else {"captions": mine}
        records.append({"video": item["video"], **text, **item["frames"]})
    return records


def video_seed(seed: int, video: str) -> int:
    """A well-mixed 32-bit seed for one video, from the run's seed and the video's name."""
    return int(np.random.SeedSequence([seed, zlib.crc32(video.encode("utf-8"))]).generate_state(1)[0])


def open_part(args: argparse.Namespace, rank: int) -> PartFile | None:
    """This rank's part file, locked; ``None`` on every rank when any rank's is held by another
    process (rank 0 says which: only it talks to the console)."""
    try:
        part, busy = PartFile(parts_dir(args.output_file) / f"rank{rank:05d}.jsonl"), None
    except FileBusyError as err:
        part, busy = None, str(err)
    refusals = [b for b in dist.all_gather_object(busy) if b]
    if not refusals:
        return part
    if part is not None:
        part.close()
    if rank == 0:
        logger.error("%s", refusals[0])
    return None


def caption_all(captioner: LoadedCaptioner, args: argparse.Namespace, mine: list[str], part: PartFile,
                generation: dict[str, Any], rank: int, world: int) -> None:
    """Caption this rank's videos, appending each batch's records to its part file."""
    loader = video_loader(VideoFolder(args.video_dir, mine, captioner.processor), args.batch_size, args.num_workers)
    with progress(total=len(mine), desc=f"captioning (rank 0 of {world})", unit="video", rank=rank) as bar:
        for batch in batched(loader, args.batch_size):
            records = caption_batch(captioner, batch, generation, args.seed)
            part.append(records)
            for record in records:
                if is_failure(record):
                    logger.warning("failed: %s: %s", record["video"], record["error"])
            bar.update(len(records))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = dist.detect_env()
    setup_logging(env.rank)
    generation = generation_kwargs(args)
    started = time.perf_counter()
    dist.init_distributed(timeout_minutes=args.dist_timeout_minutes)
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        listing = plan(args) if rank == 0 else None  # only rank 0 keeps the full listing
        todo = dist.broadcast_object(listing[1] if isinstance(listing, tuple) else listing)
        if isinstance(todo, str):
            logger.error("%s", todo)
            return 2
        if rank == 0:
            logger.info("%d videos in %s, %d to caption on %d rank(s)", len(listing[0]), args.video_dir, len(todo), world)
        part = open_part(args, rank)
        if part is None:
            return 2
        with part:
            try:
                captioner = load_captioner(args.checkpoint, args.model, args.model_type, resolve_device(args.device),
                                           processor_overrides(args))
            except LoadError as err:  # every rank fails alike: same arguments, same files
                logger.error("%s", err)
                return 2
            caption_all(captioner, args, todo[rank::world], part, generation, rank, world)
        dist.barrier()
        failed = 0
        if rank == 0:
            records = merge(parts_dir(args.output_file).glob("rank*.jsonl"), args.output_file, keep=listing[0])
            failed = sum(map(is_failure, records))
            if args.html:
                write_gallery(records, args.video_dir, args.html)
            wall = time.perf_counter() - started
            logger.info(
                "done: %d videos, %d processed this run, %d failed, %.1f s, %.2f videos/s -> %s",
                len(records), len(todo), failed, wall, len(todo) / wall if wall else 0.0, args.output_file,
            )
            if failed:
                logger.info("%d videos failed; their errors are in %s (rerun with --retry_failed)", failed,
                            args.output_file)
        failed = dist.broadcast_object(failed)
        return 1 if failed else 0
    finally:
        dist.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
