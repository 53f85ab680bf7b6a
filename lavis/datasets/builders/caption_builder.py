"""Builders for video-caption datasets in the LAVIS annotation format (MSR-VTT, MSVD, VATEX, shapes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from torch.utils.data import Dataset

from lavis.common.registry import registry
from lavis.common.schema import ProcessorSpec
from lavis.datasets.annotations import read_caption_annotations
from lavis.datasets.builders.base_builder import BaseDatasetBuilder
from lavis.datasets.datasets.caption_datasets import VideoCaptionDataset, VideoCaptionEvalDataset
from lavis.processors import build_processor

class VideoCaptionBuilder(BaseDatasetBuilder):
    """``annotations`` maps split -> LAVIS-format file; ``train`` is the training split.

    ``vis_processor`` / ``text_processor`` hold a ``train`` and an ``eval`` processor spec.
    """

    name: ClassVar[str]

    def __init__(
        self,
        annotations: dict[str, str],
        videos: str,
        vis_processor: dict[str, ProcessorSpec],
        text_processor: dict[str, ProcessorSpec],
        shuffle_videos_seed: int | None = None,
    ) -> None:
        """``shuffle_videos_seed``: a control experiment; evaluation splits pair each video's
        references with another video's frames, to measure how much a model looks at the video."""
        self.shuffle_videos_seed = shuffle_videos_seed
        self.annotations = annotations
        self.videos = videos
        self.vis_processor = vis_processor
        self.text_processor = text_processor

    def build_datasets(self) -> dict[str, Dataset]:
        video_root = Path(self.videos)
        if not video_root.is_dir():
            raise FileNotFoundError(
                f"video folder {video_root} does not exist (set by 'datasets.{self.name}.videos'); "
                "see the README for how to prepare the dataset"
            )
        out: dict[str, Dataset] = {}
        for split, path in self.annotations.items():
            rows = read_caption_annotations(path, config_key=f"datasets.{self.name}.annotations.{split}")
            mode = "train" if split == "train" else "eval"
            vis = build_processor(self._spec(self.vis_processor, "vis_processor", mode))
            text = build_processor(self._spec(self.text_processor, "text_processor", mode))
            if mode == "train":
                out[split] = VideoCaptionDataset(rows, video_root, vis, text)
            else:
                out[split] = VideoCaptionEvalDataset(rows, video_root, vis, text, shuffle_seed=self.shuffle_videos_seed)
        return out

    def _spec(self, specs: dict[str, dict[str, Any]], key: str, mode: str) -> dict[str, Any]:
        if mode not in specs:
            raise KeyError(f"'datasets.{self.name}.{key}' has no '{mode}' processor (has: {sorted(specs)})")
        return specs[mode]


@registry.register_builder("msrvtt_caption")
class MSRVTTCaptionBuilder(VideoCaptionBuilder):
    """MSR-VTT captions (6513 / 497 / 2990 videos, 20 captions each)."""

    name = "msrvtt_caption"
    DEFAULT_CONFIGS = {"default": "datasets/msrvtt/defaults_cap.yaml"}


@registry.register_builder("msvd_caption")
class MSVDCaptionBuilder(VideoCaptionBuilder):
    """MSVD (YouTube2Text) captions (1200 / 100 / 670 videos, English)."""

    name = "msvd_caption"
    DEFAULT_CONFIGS = {"default": "datasets/msvd/defaults_cap.yaml"}


@registry.register_builder("vatex_caption")
class VATEXCaptionBuilder(VideoCaptionBuilder):
    """VATEX English captions (10 per video)."""

    name = "vatex_caption"
    DEFAULT_CONFIGS = {"default": "datasets/vatex/defaults_cap.yaml"}


@registry.register_builder("shapes_caption")
class ShapesCaptionBuilder(VideoCaptionBuilder):
    """The built-in synthetic dataset (``python -m lavis.datasets.synthetic``)."""

    name = "shapes_caption"
    DEFAULT_CONFIGS = {"default": "datasets/shapes/defaults_cap.yaml"}
