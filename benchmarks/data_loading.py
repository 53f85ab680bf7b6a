"""``data_loading``: videos per second through the runner's own training and evaluation loaders.

The ``shapes`` dataset is built by its registered builder with the processors of its default
config (``video_train`` / ``video_eval``, 8 frames at 224 px), and iterated for one pass by
``lavis.runners.loaders.train_batches`` and ``eval_loader``, exactly as ``train.py`` does, with
0, 1 and 2 DataLoader workers. The evaluation loader reads the training videos (one sample per
video) so both loaders decode the same files. No target: the numbers show what workers buy.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch.utils.data import Dataset

from benchmarks.harness import ROOT, Case, CaseResult, Context
from lavis.common.registry import registry

logger = logging.getLogger(__name__)

WORKERS = (0, 1, 2)
BATCH_SIZE = 8  # RunConfig's default batch_size_train / batch_size_eval
VIDEOS = {"tiny": 5, "full": 40}
SHAPES_CONFIG = ROOT / "configs" / "datasets" / "shapes" / "defaults_cap.yaml"


@dataclass
class Position:
    """Where training stands in the data (the runner's ``TrainState`` plays this part)."""

    epoch: int = 0
    batch_in_epoch: int = 0


def ensure_shapes(folder: Path, videos: int) -> Path:
    """A ``shapes`` dataset of ``videos`` clips (written once, then reused)."""
    out = folder / f"shapes_{videos}"
    summary = out / "benchmark_done.json"
    if not summary.is_file():
        from lavis.datasets.synthetic import generate

        logger.info("generating %d shapes videos in %s", videos, out)
        info = generate(out, videos, seed=0)
        summary.write_text(json.dumps({"videos": info["videos"]}))
    return out


def build_datasets(root: Path) -> tuple[Dataset, Dataset]:
    """The training split and an evaluation dataset over the same videos, from the builder."""
    import lavis  # noqa: F401  (registers builders and processors)

    section = yaml.safe_load(SHAPES_CONFIG.read_text())["datasets"]["shapes_caption"]
    train_file = str(root / "annotations" / "cap_train.json")
    builder = registry.get("builder", "shapes_caption")(
        annotations={"train": train_file, "test": train_file}, videos=str(root / "videos"),
        vis_processor=section["vis_processor"], text_processor=section["text_processor"],
    )
    splits = builder.build_datasets()
    return splits["train"], splits["test"]


def train_pass(dataset: Dataset, workers: int) -> int:
    """One epoch of ``train_batches`` (drop_last, as training does); returns videos decoded."""
    from lavis.runners.loaders import train_batches

    batches = train_batches(dataset, Position(), batch_size=BATCH_SIZE, num_workers=workers, seed=0,
                            rank=0, world_size=1, pin_memory=False)
    try:
        return _count(itertools.islice(batches, len(dataset) // BATCH_SIZE))
    finally:
        batches.close()  # ends the generator, and with it the DataLoader's workers


def eval_pass(dataset: Dataset, workers: int) -> int:
    from lavis.runners.loaders import eval_loader

    loader, _ = eval_loader(dataset, batch_size=BATCH_SIZE, num_workers=workers, seed=0, rank=0,
                            world_size=1, pad=False, pin_memory=False)
    return _count(loader)


def _count(batches: Any) -> int:
    videos = 0
    for batch in batches:
        if batch["skipped"]:
            raise RuntimeError(f"the loader skipped videos: {batch['skipped']}")
        videos += len(batch["video"])
    return videos


def run(ctx: Context) -> CaseResult:
    result = CaseResult()
    root = ensure_shapes(ctx.folder("data"), VIDEOS[ctx.size])
    train_set, eval_set = build_datasets(root)
    for label, dataset, one_pass in (("train", train_set, train_pass), ("eval", eval_set, eval_pass)):
        group = result.group(f"{label} loader", "0 workers", samples=len(dataset), batch_size=BATCH_SIZE)
        for workers in WORKERS:
            expected = len(dataset) // BATCH_SIZE * BATCH_SIZE if label == "train" else len(dataset)
            variant, videos = ctx.time_variant(group, f"{workers} workers", lambda w=workers: one_pass(dataset, w),
                                               items=expected)
            if videos != expected:
                raise RuntimeError(f"{label} pass with {workers} workers gave {videos} videos, expected {expected}")
    result.info.update(dataset=str(root), videos=VIDEOS[ctx.size], frames_per_video=8, image_size=224)
    return result


CASE = Case(
    name="data_loading",
    description="videos/s of one pass of the training and evaluation DataLoaders (shapes, 8 frames at 224 px)",
    baseline="0 workers (decoding in the main process)",
    target=None,
    run=run,
)
