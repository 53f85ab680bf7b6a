"""``video_caption`` with the project's own captioners (the BLIP-2 video models, the demo model).

Loads like ``inference.py`` (``checkpoint``: ``demo``, a ``save_pretrained`` folder or a
``train.py`` checkpoint; or ``model`` / ``model_type`` from the registry) and decodes the frames
its eval processor would pick, resized and normalised the same way.
"""

from __future__ import annotations

from typing import Any

import torch

from lavis.common.registry import registry
from lavis.datasets.video import VideoInfo, build_frame_sampler, resize_frames
from lavis.inference.loading import LoadedCaptioner, load_captioner
from lavis.pipeline.stages.base import Clip, Stage


@registry.register("stage", "video_caption")
class VideoCaptionStage(Stage):
    name = "video_caption"

    def __init__(self, checkpoint: str | None = "demo", model: str | None = None, model_type: str | None = None,
                 n_frames: int = 8, num_beams: int = 5, max_length: int = 30, min_length: int = 8,
                 repetition_penalty: float = 1.0, length_penalty: float = 1.0, output_key: str = "caption") -> None:
        """``n_frames``: frames per clip, sampled uniformly as the eval processor does."""
        self.checkpoint = None if model is not None and checkpoint == "demo" else checkpoint
        self.model, self.model_type, self.n_frames, self.output_key = model, model_type, n_frames, output_key
        self.generation = dict(num_beams=num_beams, max_length=max_length, min_length=min_length,
                               repetition_penalty=repetition_penalty, length_penalty=length_penalty)
        self.sampler = build_frame_sampler("uniform")
        self.loaded: LoadedCaptioner | None = None

    def select_frames(self, info: VideoInfo) -> list[int]:
        return list(self.sampler(info, self.n_frames, None))

    def setup(self, device: torch.device) -> None:
        self.loaded = load_captioner(self.checkpoint, self.model, self.model_type, device, {"n_frms": self.n_frames})
        self.device = device

    @torch.no_grad()
    def process(self, clips: list[Clip]) -> list[dict[str, Any]]:
        processor = self.loaded.processor
        video = torch.stack([
            processor.transform(resize_frames(c.frames[self.name], processor.image_size, processor.resize_mode))
            for c in clips
        ]).to(self.device)
        captions = self.loaded.model.generate({"video": video}, **self.generation)
        return [{self.output_key: caption} for caption in captions]
