"""The ``qa_frame_mining`` builder: a frame-selection QA file, its videos and its mined frames."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

from torch.utils.data import Dataset

from lavis.common.registry import registry
from lavis.datasets.builders.base_builder import BaseDatasetBuilder
from lavis.datasets.datasets.frame_selection_datasets import MinedFramesDataset, VideoCandidatesDataset
from lavis.datasets.qa_frames import CAPTION_SETTINGS, read_qa_file, split_by_video

logger = logging.getLogger(__name__)
MANIFEST = "manifest.json"


@registry.register_builder("qa_frame_mining")
class QAFrameMiningBuilder(BaseDatasetBuilder):
    """``train`` (mined frames) and ``val`` (about ``ratio`` of the videos, never also in train)
    from ``json_path``; ``test_json_path`` adds a ``test`` split scored on whole videos."""

    DEFAULT_CONFIGS: ClassVar[dict[str, str]] = {"default": "datasets/qa_frame_mining/defaults.yaml"}

    def __init__(
        self,
        json_path: str,
        video_root: str,
        mined_root: str | None = None,
        caption_setting: int = 1,
        ratio: float = 0.2,
        split_seed: int = 0,
        test_json_path: str | None = None,
        test_video_root: str | None = None,
        fps_target: float = 2.0,
        max_side: int = 448,
        max_negatives: int | None = None,
    ) -> None:
        """``mined_root``: the negative-mining output folder (needed for ``train``);
        ``caption_setting``: 1 question, 2 choices, 3 question + choices; ``fps_target``: the
        candidate frame rate of evaluation; ``max_side``: frames are shrunk to this;
        ``test_video_root``: where the test file's videos are (default: the test file's folder)."""
        if caption_setting not in CAPTION_SETTINGS:
            raise ValueError(f"datasets.qa_frame_mining.caption_setting must be one of {CAPTION_SETTINGS}, got {caption_setting!r}")
        self.json_path, self.video_root, self.mined_root = json_path, video_root, mined_root
        self.caption_setting, self.ratio, self.split_seed = caption_setting, ratio, split_seed
        self.test_json_path, self.fps_target = test_json_path, fps_target
        self.test_video_root = test_video_root or (str(Path(test_json_path).parent) if test_json_path else None)
        self.max_side, self.max_negatives = max_side, max_negatives

    def build_datasets(self) -> dict[str, Dataset]:
        samples = read_qa_file(self.json_path)
        train, val = split_by_video(samples, self.ratio, self.split_seed)
        logger.info("qa_frame_mining: %d train / %d val questions (split by video, ratio %g)", len(train), len(val), self.ratio)
        out: dict[str, Dataset] = {}
        if self.mined_root is not None:
            out["train"] = MinedFramesDataset(
                train, self._mined_records(), self.mined_root, self.caption_setting, self.max_side, self.max_negatives
            )
        if val:
            out["val"] = self._eval(val, self.video_root)
        if self.test_json_path is not None:
            out["test"] = self._eval(read_qa_file(self.test_json_path), self.test_video_root)
        return out

    def _eval(self, samples, video_root) -> VideoCandidatesDataset:
        return VideoCandidatesDataset(samples, video_root, self.caption_setting, self.fps_target, self.max_side)

    def _mined_records(self) -> dict[str, dict[str, Any]]:
        manifest = Path(self.mined_root) / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{manifest} does not exist (set by 'datasets.qa_frame_mining.mined_root'); run "
                "scripts/frame_selection/in_video_negative_mining.py --input_folder ... --output_folder ... first"
            )
        return json.loads(manifest.read_text(encoding="utf-8")).get("samples", {})
