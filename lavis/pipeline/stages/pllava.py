"""PLLaVA checkpoints through ``transformers``' LLaVA classes, with PLLaVA's pooling projector.

A PLLaVA model is a LLaVA model (same vision tower, projector and language-model weights) whose
projector output for the ``num_frames`` frames of a video, ``(T, h, w)`` patch grid each, is
average-pooled to ``pooling_shape`` ``(t, h', w')`` before it enters the language model: one
``<image>`` placeholder stands for ``t * h' * w'`` tokens (``--pooling_shape 16-12-12`` in the
reference scripts). Its ``config.json`` (``model_type: pllava``, unknown to ``transformers``) is
read here and turned into a ``LlavaConfig``; the weights load unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lavis.datasets.video import fit_within
from lavis.models.image_embedders import require_model_dir
from lavis.pipeline.stages.hf_loading import load_for_inference

LLAVA_KEYS = ("vision_config", "text_config", "image_token_index", "projector_hidden_act",
              "vision_feature_select_strategy", "vision_feature_layer")
DEFAULT_PROMPT_TEMPLATE = "USER: <image>\n{prompt} ASSISTANT:"


class VideoPoolingProjector(nn.Module):
    """LLaVA's projector, then adaptive average pooling over (frames, height, width) per video."""

    def __init__(self, projector: nn.Module, num_frames: int, frame_shape: tuple[int, int],
                 pooling_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.projector, self.num_frames, self.frame_shape = projector, num_frames, frame_shape
        self.pool = nn.AdaptiveAvgPool3d(pooling_shape)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(videos * T, h * w, D_vision)`` -> ``(videos, t * h' * w', D_text)``."""
        projected = self.projector(features)
        frames, _, dim = projected.shape
        h, w = self.frame_shape
        video = projected.view(frames // self.num_frames, self.num_frames, h, w, dim).permute(0, 4, 1, 2, 3)
        return self.pool(video).flatten(2).transpose(1, 2)


class PllavaCaptioner:
    def __init__(self, path: str | None, prompt: str, n_frames: int, pooling_shape: list[int] | None,
                 max_side: int | None, generation: dict, device: torch.device, tp_mesh: Any = None,
                 prompt_template: str = DEFAULT_PROMPT_TEMPLATE) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer, LlavaConfig, LlavaForConditionalGeneration

        folder = require_model_dir(path, "video_caption.path", "ermu2001/pllava-7b")
        raw = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        config = LlavaConfig(**{k: raw[k] for k in LLAVA_KEYS if k in raw})
        pooling = tuple(pooling_shape or raw.get("pooling_shape") or (n_frames, 12, 12))
        if len(pooling) != 3:
            raise ValueError(f"pooling_shape must be frames-height-width, got {pooling}")
        vision = config.vision_config
        side = vision.image_size // vision.patch_size
        self.model = load_for_inference(LlavaForConditionalGeneration, folder, device, tp_mesh, config=config)
        inner = self.model.model
        inner.multi_modal_projector = VideoPoolingProjector(inner.multi_modal_projector, n_frames, (side, side), pooling)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.tokenizer.padding_side = "left"
        self.image_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        self.image_token = self.tokenizer.convert_ids_to_tokens(config.image_token_index)
        self.tokens_per_video = math.prod(pooling)
        self.text = prompt_template.format(prompt=prompt).replace("<image>", self.image_token * self.tokens_per_video)
        self.n_frames, self.max_side, self.generation, self.device = n_frames, max_side, generation, device

    @torch.no_grad()
    def caption(self, videos: list[np.ndarray]) -> list[str]:
        for v in videos:
            if len(v) != self.n_frames:
                raise ValueError(f"PLLaVA pools exactly {self.n_frames} frames per video, got {len(v)}")
        frames = [fit_within(f, self.max_side) for v in videos for f in v]
        pixels = self.image_processor(images=frames, return_tensors="pt")["pixel_values"]
        tokens = self.tokenizer([self.text] * len(videos), return_tensors="pt", padding=True)
        out = self.model.generate(**tokens.to(self.device), pixel_values=pixels.to(self.device, self.model.dtype),
                                  **self.generation)
        new = out[:, tokens["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
