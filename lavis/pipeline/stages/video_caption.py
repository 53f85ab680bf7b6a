"""``video_caption``: a caption per clip, from the project's captioners or a ``transformers`` VLM.

``backend: lavis`` loads like ``inference.py`` (``checkpoint``: ``demo``, a ``save_pretrained``
folder or a ``train.py`` checkpoint; or ``model`` / ``model_type`` from the registry) and feeds
the frames its eval processor would pick, resized and normalised the same way.
``backend: hf`` runs an ``AutoModelForImageTextToText`` folder (``path``) with ``prompt``
(``hf_captioner.py``); ``backend: pllava`` a PLLaVA checkpoint through the LLaVA classes with
its pooling projector (``pllava.py``, ``pooling_shape`` e.g. ``[16, 12, 12]``). ``n_frames``
frames are sampled uniformly in every case.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from lavis.common.registry import registry
from lavis.datasets.video import VideoInfo, build_frame_sampler, resize_frames
from lavis.inference.loading import load_captioner
from lavis.pipeline.stages.base import Clip, Stage
from lavis.pipeline.stages.hf_captioner import HFCaptioner, InputMode
from lavis.pipeline.stages.pllava import PllavaCaptioner


@registry.register("stage", "video_caption")
class VideoCaptionStage(Stage):
    name = "video_caption"

    def __init__(self, backend: Literal["lavis", "hf", "pllava"] = "lavis", checkpoint: str | None = "demo",
                 model: str | None = None, model_type: str | None = None, path: str | None = None,
                 prompt: str = "Describe this video in detail.", input_mode: InputMode = "video",
                 max_side: int | None = None, trust_remote_code: bool = False, pooling_shape: list[int] | None = None,
                 n_frames: int = 8,
                 num_beams: int = 5, max_length: int = 30, min_length: int = 8, max_new_tokens: int = 256,
                 repetition_penalty: float = 1.0, length_penalty: float = 1.0, output_key: str = "caption") -> None:
        """lavis: ``checkpoint`` / ``model`` / ``model_type``, beams and caption lengths in tokens.
        hf / pllava: ``path``, ``prompt``, ``max_side`` (frame resolution), ``max_new_tokens``; hf:
        ``input_mode``; pllava: ``pooling_shape`` (default: the checkpoint's)."""
        self.backend, self.n_frames, self.output_key = backend, n_frames, output_key
        self.checkpoint = None if model is not None and checkpoint == "demo" else checkpoint
        self.model, self.model_type = model, model_type
        self.hf = dict(path=path, prompt=prompt, input_mode=input_mode, max_side=max_side,
                       trust_remote_code=trust_remote_code)
        self.pooling_shape = pooling_shape
        if backend in ("hf", "pllava"):
            self.generation = dict(num_beams=num_beams, max_new_tokens=max_new_tokens, do_sample=False,
                                   repetition_penalty=repetition_penalty, length_penalty=length_penalty)
        else:
            self.generation = dict(num_beams=num_beams, max_length=max_length, min_length=min_length,
                                   repetition_penalty=repetition_penalty, length_penalty=length_penalty)
        self.sampler = build_frame_sampler("uniform")

    def select_frames(self, info: VideoInfo) -> list[int]:
        return list(self.sampler(info, self.n_frames, None))

    def setup(self, device: torch.device, tp_mesh: Any = None) -> None:
        self.device = device
        if self.backend == "hf":
            self.captioner = HFCaptioner(**self.hf, generation=self.generation, device=device, tp_mesh=tp_mesh)
        elif self.backend == "pllava":
            self.captioner = PllavaCaptioner(self.hf["path"], self.hf["prompt"], self.n_frames, self.pooling_shape,
                                             self.hf["max_side"], self.generation, device, tp_mesh)
        else:
            self.loaded = load_captioner(self.checkpoint, self.model, self.model_type, device, {"n_frms": self.n_frames})

    @torch.no_grad()
    def process(self, clips: list[Clip]) -> list[dict[str, Any]]:
        if self.backend in ("hf", "pllava"):
            captions = self.captioner.caption([c.frames[self.name] for c in clips])
        else:
            processor = self.loaded.processor
            video = torch.stack([
                processor.transform(resize_frames(c.frames[self.name], processor.image_size, processor.resize_mode))
                for c in clips
            ]).to(self.device)
            captions = self.loaded.model.generate({"video": video}, **self.generation)
        return [{self.output_key: caption} for caption in captions]
