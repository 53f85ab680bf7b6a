"""Vision encoders: frames in, patch tokens out, built from ``transformers`` modules.

``eva_vit_g``: ``Blip2VisionModel`` (EVA ViT-g/14 as BLIP-2 uses it) applied to every frame;
output ``(B, T, 257, 1408)`` at 224 px. ``timesformer``: ``TimesformerModel`` (divided
space-time attention) over the whole clip; its tokens already mix time, so the output is one
"frame" of ``1 + T * 196`` tokens, ``(B, 1, 1 + T*196, 768)``.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Blip2VisionConfig, Blip2VisionModel, TimesformerConfig, TimesformerModel

from lavis.models.blip2_video.config import VisionConfig
from lavis.models.blip2_video.parts import DTYPES, freeze


class VisionEncoder(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.per_frame = cfg.arch == "eva_vit_g"
        if cfg.arch == "eva_vit_g":
            self.model = Blip2VisionModel(Blip2VisionConfig(
                hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                image_size=cfg.image_size, patch_size=cfg.patch_size, layer_norm_eps=cfg.layer_norm_eps,
                qkv_bias=True,
                # transformers defaults this to 1e-10 (BLIP-2's ViT is always loaded from weights),
                # which leaves a randomly initialised encoder all but constant: it learns colour
                # and never shape. Weights loaded afterwards are unaffected.
                initializer_range=0.02,
            ))
        else:
            self.model = TimesformerModel(TimesformerConfig(
                image_size=cfg.image_size, patch_size=cfg.patch_size, num_frames=cfg.num_frames,
                hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                layer_norm_eps=cfg.layer_norm_eps, attention_type="divided_space_time",
            ))
        if cfg.grad_checkpointing:
            self.model.gradient_checkpointing_enable({"use_reentrant": False})
        self.model.to(DTYPES[cfg.precision])
        if cfg.freeze:
            freeze(self)

    @property
    def width(self) -> int:
        return self.cfg.hidden_size

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W)`` -> ``(B, T', N, D)`` float32 tokens (T' = T, or 1 for TimeSformer)."""
        b, t = video.shape[:2]
        dtype = DTYPES[self.cfg.precision]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.cfg.freeze):
            if self.per_frame:
                tokens = self.model(pixel_values=video.flatten(0, 1).to(dtype)).last_hidden_state
                return tokens.float().unflatten(0, (b, t))
            if t != self.cfg.num_frames:
                raise ValueError(f"TimeSformer was configured for {self.cfg.num_frames} frames, got {t}")
            tokens = self.model(pixel_values=video.to(dtype)).last_hidden_state
            return tokens.float().unsqueeze(1)
