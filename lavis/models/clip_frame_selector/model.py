"""The CLIP frame selector: scores how relevant each frame of a video is to a question.

``transformers`` ``CLIPModel`` and its tokenizer from a local folder, plus a learnt SigLIP-style
scale and bias on the cosine similarity, so the three losses (``losses.py``) neither saturate
nor vanish. ``save_pretrained`` writes a folder that ``path`` (or ``from_pretrained``) reads
back: the CLIP weights and config, the tokenizer, and ``selector.yaml`` with the scale, the bias
and the image settings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import yaml
from torch import nn
from transformers import AutoTokenizer, CLIPConfig, CLIPModel

from lavis.common.io import atomic_open
from lavis.common.registry import registry
from lavis.models.base_model import BaseModel
from lavis.models.blip2_video.parts import freeze, keep_frozen_in_eval
from lavis.models.clip_frame_selector.frames import CLIP_MEAN, CLIP_STD, FrameProcessor, ImageMode, features
from lavis.models.clip_frame_selector.losses import LOSS_SETTINGS, LOSSES
from lavis.models.image_embedders import image_statistics, require_model_dir

logger = logging.getLogger(__name__)
SELECTOR_FILE = "selector.yaml"
MAX_LOG_SCALE = math.log(100.0)  # CLIP's clamp on its temperature


@registry.register_model("clip_frame_selector")
class ClipFrameSelector(BaseModel):
    DEFAULT_CONFIGS: ClassVar[dict[str, str]] = {
        "large": "models/clip_frame_selector/large.yaml",
        "tiny": "models/clip_frame_selector/tiny.yaml",
    }
    default_model_type: ClassVar[str] = "large"

    def __init__(
        self,
        path: str | None = None,
        random_init: bool = False,
        config: dict[str, Any] | None = None,
        tokenizer: str | None = None,
        image_mode: ImageMode = "pad",
        image_size: int | None = None,
        loss_setting: int = 1,
        init_scale: float = 10.0,
        init_bias: float = -10.0,
        max_txt_len: int = 77,
        freeze_text: bool = False,
        freeze_vision: bool = False,
        embed_batch_size: int = 64,
    ) -> None:
        """``path``: a local CLIP folder (``openai/clip-vit-large-patch14`` layout) or one this
        class saved. ``random_init`` builds CLIP from ``config`` (``CLIPConfig`` keys) instead,
        for tests and the tiny synthetic model; ``tokenizer`` then names the tokenizer folder."""
        super().__init__()
        if loss_setting not in LOSSES:
            raise ValueError(f"model.loss_setting must be one of {LOSS_SETTINGS}, got {loss_setting!r}")
        self.loss_setting, self.max_txt_len, self.embed_batch_size = loss_setting, max_txt_len, embed_batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(
            str(require_model_dir_or_tokenizer(tokenizer or path)), local_files_only=True
        )
        saved: dict[str, Any] = {}
        if random_init:
            self.clip = CLIPModel(self._random_config(config or {}))
            mean, std = CLIP_MEAN, CLIP_STD
        else:
            folder = require_model_dir(path, "model.path", "openai/clip-vit-large-patch14")
            self.clip = CLIPModel.from_pretrained(folder, local_files_only=True)
            mean, std = image_statistics(folder, CLIP_MEAN, CLIP_STD)
            if (folder / SELECTOR_FILE).is_file():
                saved = yaml.safe_load((folder / SELECTOR_FILE).read_text(encoding="utf-8")) or {}
        self.image_size = image_size or self.clip.config.vision_config.image_size
        self.processor = FrameProcessor(self.image_size, image_mode, mean, std)
        trained_with = {k: saved[k] for k in ("image_mode", "image_size") if k in saved}
        if trained_with and trained_with != {"image_mode": image_mode, "image_size": self.image_size}:
            logger.warning("%s was trained with %s but is configured with image_mode=%s, image_size=%d",
                           path, trained_with, image_mode, self.image_size)
        # CLIP's own temperature is replaced by log_scale/bias below; frozen, it is no unused
        # trainable parameter for DDP to wait on.
        self.clip.logit_scale.requires_grad_(False)
        self.log_scale = nn.Parameter(torch.tensor(float(saved.get("log_scale", math.log(init_scale)))))
        self.bias = nn.Parameter(torch.tensor(float(saved.get("bias", init_bias))))
        if freeze_text:
            freeze(self.clip.text_model)
            freeze(self.clip.text_projection)
        if freeze_vision:
            freeze(self.clip.vision_model)
            freeze(self.clip.visual_projection)

    def _random_config(self, overrides: dict[str, Any]) -> CLIPConfig:
        """A CLIP config whose text side matches the tokenizer (vocabulary and EOS pooling)."""
        text = {
            "vocab_size": len(self.tokenizer), "eos_token_id": self.tokenizer.eos_token_id,
            "bos_token_id": self.tokenizer.bos_token_id, "pad_token_id": self.tokenizer.pad_token_id,
            **overrides.get("text_config", {}),
        }
        return CLIPConfig(**{**overrides, "text_config": text})

    def train(self, mode: bool = True) -> ClipFrameSelector:
        super().train(mode)
        keep_frozen_in_eval(self)
        return self

    # ------------------------------------------------------------------ embeddings and scores
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """``(C, D)`` unit vectors."""
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_txt_len, return_tensors="pt"
        ).to(self.device)
        out = self.clip.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return nn.functional.normalize(features(out), dim=-1)

    def encode_frames(self, frames: Sequence[np.ndarray], processor: FrameProcessor | None = None) -> torch.Tensor:
        """``(N, D)`` unit vectors; a tiled frame is the normalised mean of its tiles."""
        pixels, owner = (processor or self.processor)(frames)
        parts = [
            features(self.clip.get_image_features(pixel_values=pixels[i : i + self.embed_batch_size].to(self.device)))
            for i in range(0, len(pixels), self.embed_batch_size)
        ]
        views = nn.functional.normalize(torch.cat(parts), dim=-1)
        owner = owner.to(self.device)
        summed = torch.zeros(len(frames), views.shape[1], device=self.device, dtype=views.dtype)
        summed.index_add_(0, owner, views)
        return nn.functional.normalize(summed, dim=-1)

    def logits(self, text: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """``(C, N)``: ``scale * cos + bias``."""
        return self.log_scale.clamp(max=MAX_LOG_SCALE).exp() * text @ frames.T + self.bias

    def forward(self, samples: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``text_input`` (C captions), ``frames`` (N uint8 arrays), ``owner`` (N,), ``label`` (N,)."""
        logits = self.logits(self.encode_text(samples["text_input"]), self.encode_frames(samples["frames"]))
        owner, label = samples["owner"].to(self.device), samples["label"].to(self.device)
        return {"loss": LOSSES[self.loss_setting](logits, owner, label), "logits": logits}

    @torch.no_grad()
    def score(self, text: str, frames: Sequence[np.ndarray], processor: FrameProcessor | None = None) -> torch.Tensor:
        """``(N,)`` relevance of each frame to ``text`` (higher is more relevant)."""
        return self.logits(self.encode_text([text]), self.encode_frames(frames, processor))[0].float().cpu()

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, directory: str | Path) -> None:
        """A folder that ``model.path`` (and ``from_pretrained``) load: CLIP, tokenizer, head."""
        directory = Path(directory)
        self.clip.save_pretrained(directory)
        self.tokenizer.save_pretrained(str(directory))
        head = {
            "log_scale": float(self.log_scale.detach()), "bias": float(self.bias.detach()),
            "image_mode": self.processor.mode, "image_size": self.image_size,
            "loss_setting": self.loss_setting, "max_txt_len": self.max_txt_len,
        }
        with atomic_open(directory / SELECTOR_FILE) as f:
            yaml.safe_dump(head, f, sort_keys=False)
        logger.info("saved the frame selector to %s", directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **overrides: Any) -> ClipFrameSelector:
        """A saved selector with the image settings it was trained with (unless overridden)."""
        head_file = Path(directory) / SELECTOR_FILE
        head = yaml.safe_load(head_file.read_text(encoding="utf-8")) if head_file.is_file() else {}
        settings = {k: head[k] for k in ("image_mode", "image_size", "loss_setting", "max_txt_len") if k in head}
        return cls(path=str(directory), **{**settings, **overrides})


def require_model_dir_or_tokenizer(path: str | None) -> Path:
    """A tokenizer folder (a model folder or a tokenizer-only one), or a clear error."""
    if path and (Path(path) / "tokenizer_config.json").is_file():
        return Path(path)
    return require_model_dir(path, "model.tokenizer", "openai/clip-vit-large-patch14")
