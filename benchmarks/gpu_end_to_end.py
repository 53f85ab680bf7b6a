"""``gpu_end_to_end``: videos/s from 720p H.264 files to captions on one GPU.

The path ``batch_inference.py`` takes (``VideoFolder`` videos decoded one by one in DataLoader
workers while the GPU captions, ``batched`` into model batches, ``caption_batch`` on each), with
the BLIP-2 ViT-g + Q-Former + OPT-2.7B captioner of ``gpu_captioning``: 8 frames at 224 px,
greedy, exactly 30 new tokens, batches of 64. One pass captions 384 files (4 distinct 10 s
1280x720 GOP-30 videos, linked 96 times each: decoding costs the same for every copy). The
workers persist between passes, as they do through a job over millions of clips.

Variants, each one pass:
- baseline: captioning the same batches already decoded (the GPU's share of the work alone);
- decoding alone in the same workers (the CPUs' share);
- end to end: what a user gets; its ratio to the baseline shows how much of the decoding the
  GPU work hides (1.0: all of it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from benchmarks import gpu_models as gm
from benchmarks.harness import Case, CaseResult, Context, Target
from benchmarks.videos import TINY_VIDEOS, VideoSpec, ensure_video
from lavis.inference.cli_args import generation_from_flags
from lavis.inference.loading import LoadedCaptioner
from lavis.inference.records import is_failure
from lavis.inference.video_folder import VideoFolder, batched, collate, video_loader
from lavis.processors.video_processors import VideoEvalProcessor
from lavis.projects.blip2_timesformer.batch_inference import caption_batch

logger = logging.getLogger(__name__)

VIDEO = {"full": VideoSpec(1280, 720, 10, 30), "tiny": TINY_VIDEOS[0]}
DISTINCT = {"full": 4, "tiny": 2}
PER_PASS = {"full": 384, "tiny": 4}
BATCH = {"full": 64, "tiny": 2}
TARGET_VIDEOS_PER_S = 40.0
FROM_DECODED = "caption already-decoded batches (GPU alone)"


def workers(ctx: Context) -> int:
    """Every core but two (the main process drives the GPU); one at the tiny size."""
    return 1 if ctx.tiny else max(1, (os.cpu_count() or 2) - 2)


def video_folder(ctx: Context) -> tuple[Path, list[str]]:
    """``PER_PASS`` links to ``DISTINCT`` written videos (written once, in parallel)."""
    from concurrent.futures import ProcessPoolExecutor

    spec, distinct = VIDEO[ctx.size], DISTINCT[ctx.size]
    store = ctx.folder("videos")
    with ProcessPoolExecutor(max_workers=min(distinct, os.cpu_count() or 1)) as pool:
        written = list(pool.map(ensure_video, [spec] * distinct, [store] * distinct, range(distinct)))
    root = ctx.folder(f"e2e_{spec.name}_{PER_PASS[ctx.size]}")
    names = []
    for i in range(PER_PASS[ctx.size]):
        link = root / f"clip{i:04d}.mp4"
        if not link.is_symlink():
            link.symlink_to(written[i % distinct])
        names.append(link.name)
    return root, names


def generation() -> dict[str, Any]:
    """The inference CLI's defaults, greedy, exactly ``NEW_TOKENS`` tokens."""
    n = str(gm.NEW_TOKENS)
    return generation_from_flags(["--num_beams", "1", "--max_length", n, "--min_length", n])


def one_pass(captioner: LoadedCaptioner, batches: Iterable[dict[str, Any]], gen: dict[str, Any]) -> int:
    """Caption every batch; the number of videos captioned (a failed video is an error)."""
    captioned = 0
    for batch in batches:
        records = caption_batch(captioner, batch, gen)
        failed = [r for r in records if is_failure(r)]
        if failed:
            raise RuntimeError(f"{len(failed)} videos failed: {failed[0]}")
        captioned += len(records)
    gm.synchronize()
    return captioned


def decode_pass(loader: DataLoader) -> int:
    decoded = sum("error" not in item for item in loader)
    if decoded != len(loader.dataset):
        raise RuntimeError(f"{len(loader.dataset) - decoded} videos failed to decode")
    return decoded


def run(ctx: Context) -> CaseResult:
    result = CaseResult()
    where = gm.placement(ctx, result)
    if where is None:
        return result
    size, device, name = where.size, where.device, where.name
    root, names = video_folder(ctx)
    model, build_s = gm.timed_build(gm.build_captioner, "opt-2.7b", size, device, ctx.workdir)
    processor = VideoEvalProcessor(image_size=gm.VISION[size]["image_size"], n_frms=gm.FRAMES)
    captioner = LoadedCaptioner(model, processor, {"name": "video_eval"}, "random weights")
    gen, count, batch_size = generation(), len(names), BATCH[ctx.size]
    loader = video_loader(VideoFolder(root, names, processor), batch_size, workers(ctx), persistent=True)
    result.info.update(device=name, video=VIDEO[ctx.size].name, distinct_videos=DISTINCT[ctx.size],
                       videos_per_pass=count, batch_size=batch_size, workers=workers(ctx), build_s=build_s,
                       cpu_cores=os.cpu_count(), **gen)
    group = result.group(f"{VIDEO[ctx.size].name} -> captions", FROM_DECODED)
    distinct = [loader.dataset[i] for i in range(DISTINCT[ctx.size])]  # each distinct video decoded once
    decoded = [collate([dict(distinct[i % len(distinct)], video=names[i])
                        for i in range(k, min(k + batch_size, count))])
               for k in range(0, count, batch_size)]
    ctx.time_variant(group, FROM_DECODED, lambda: one_pass(captioner, decoded, gen), items=count)
    del decoded
    ctx.time_variant(group, f"decode alone, {workers(ctx)} workers", lambda: decode_pass(loader), items=count)
    end_to_end, _ = ctx.time_variant(group, f"end to end, {workers(ctx)} decode workers (project)",
                                     lambda: one_pass(captioner, batched(loader, batch_size), gen), items=count)
    rate = count / end_to_end.timing.median
    if where.limits:
        limit = gm.captioning_limit(batch_size, 1, where.limits)
        end_to_end.info.update(vit_limit_videos_per_s=round(limit["vit_limit_videos_per_s"], 1),
                               fraction_of_vit_limit=round(rate / limit["vit_limit_videos_per_s"], 3))
    if size == "real":
        result.target = Target(rate >= TARGET_VIDEOS_PER_S,
                               f"{rate:.1f} videos/s end to end on {name} (goal {TARGET_VIDEOS_PER_S:g})")
    return result


CASE = Case(
    name="gpu_end_to_end",
    description="720p H.264 files -> captions with BLIP-2 ViT-g + Q-Former + OPT-2.7B (random bf16), greedy: "
                "decoding in DataLoader workers overlapped with the GPU, as batch_inference.py runs",
    baseline=FROM_DECODED,
    target=f">= {TARGET_VIDEOS_PER_S:g} videos/s end to end on one H100",
    run=run,
)
