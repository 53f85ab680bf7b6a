"""``batch_inference``: captioning a folder with the demo model, decode overlapped or not.

Variants, all with the same generation arguments and the project's captioning code
(``caption_batch`` of ``batch_inference.py`` on ``VideoFolder`` items and their ``collate``):
- baseline: a sequential loop, decode one video, caption it, next (batch 1);
- batches of 4 decoded in the main process (DataLoader without workers): what batching alone buys;
- the project's batch path: batches of 4 decoded by 2 DataLoader workers while the model runs.
The captions of every variant must equal the baseline's (a caption never depends on its batch).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from benchmarks.harness import Case, CaseResult, Context, Target
from lavis.inference.cli_args import generation_from_flags
from lavis.inference.loading import LoadedCaptioner, load_captioner
from lavis.inference.records import is_failure
from lavis.inference.video_folder import VideoFolder, batched, collate, list_videos, video_loader
from lavis.projects.blip2_timesformer.batch_inference import caption_batch

logger = logging.getLogger(__name__)

VIDEOS = {"tiny": 4, "full": 32}
CLIP_SIZE = 128  # pixels; the demo model's processor resizes to its 64
BATCH_SIZE = 4
WORKERS = 2
NUM_BEAMS = 3
SPEEDUP = 1.5
SEQUENTIAL = "sequential loop (batch 1)"
BATCHED = f"batch {BATCH_SIZE}, decode in main process"
OVERLAPPED = f"batch {BATCH_SIZE}, {WORKERS} decode workers (project)"


def ensure_clips(folder: Path, videos: int) -> Path:
    """A folder of ``videos`` shapes clips (the dataset generator's, written once)."""
    out = folder / f"clips_{videos}"
    if not (out / "videos").is_dir() or len(list((out / "videos").glob("*.mp4"))) < videos:
        from lavis.datasets.synthetic import generate

        logger.info("generating %d shapes clips in %s", videos, out)
        generate(out, videos, seed=1, size=CLIP_SIZE)
    return out / "videos"


def sequential(captioner: LoadedCaptioner, folder: VideoFolder, gen: dict[str, Any]) -> dict[str, str]:
    records = []
    for index in range(len(folder)):
        records += caption_batch(captioner, collate([folder[index]]), gen)
    return _captions(records)


def loader_pass(captioner: LoadedCaptioner, folder: VideoFolder, gen: dict[str, Any], workers: int) -> dict[str, str]:
    records = []
    for batch in batched(video_loader(folder, BATCH_SIZE, workers), BATCH_SIZE):  # as batch_inference.py runs
        records += caption_batch(captioner, batch, gen)
    return _captions(records)


def _captions(records: list[dict[str, Any]]) -> dict[str, str]:
    failed = [r for r in records if is_failure(r)]
    if failed:
        raise RuntimeError(f"{len(failed)} videos failed: {failed[0]}")
    return {r["video"]: r["caption"] for r in records}


def run(ctx: Context) -> CaseResult:
    result = CaseResult()
    root = ensure_clips(ctx.folder("data"), VIDEOS[ctx.size])
    names = list_videos(root, "mp4")[: VIDEOS[ctx.size]]
    captioner = load_captioner("demo", device="cpu")
    folder = VideoFolder(root, names, captioner.processor)
    gen = generation_from_flags(["--num_beams", str(NUM_BEAMS)])  # the CLIs' other defaults
    caption_batch(captioner, collate([folder[0]]), gen)  # one-time lazy set-up belongs to no variant
    group = result.group("caption folder", SEQUENTIAL, videos=len(names), **gen)
    _, reference = ctx.time_variant(group, SEQUENTIAL, lambda: sequential(captioner, folder, gen), items=len(names))
    same = True
    for name, workers in ((BATCHED, 0), (OVERLAPPED, WORKERS)):
        _, captions = ctx.time_variant(group, name, lambda w=workers: loader_pass(captioner, folder, gen, w),
                                       items=len(names))
        same = same and captions == reference
    result.checks["same_captions"] = same
    result.info["example_captions"] = dict(list(reference.items())[:3])
    speedup = group.ratio(OVERLAPPED)
    result.target = Target(speedup >= SPEEDUP, f"overlapped speed-up {speedup:.2f}x (goal {SPEEDUP:g}x)")
    return result


CASE = Case(
    name="batch_inference",
    description=f"captioning {VIDEOS['full']} shapes clips with the demo model ({NUM_BEAMS} beams)",
    baseline=SEQUENTIAL,
    target=f">= {SPEEDUP:g}x faster with decode overlapped in {WORKERS} DataLoader workers (batch {BATCH_SIZE})",
    run=run,
)
