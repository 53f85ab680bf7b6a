"""The Q-Former: learned queries cross-attend to vision tokens (``transformers`` modules).

``Blip2QFormerModel`` for BLIP-2; ``InstructBlipQFormerModel`` when instruction-aware, where the
instruction's tokens join the queries in self-attention (InstructBLIP).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel, InstructBlipQFormerConfig, InstructBlipQFormerModel

from lavis.models.blip2_video.config import QFormerConfig
from lavis.models.blip2_video.parts import freeze


class QFormer(nn.Module):
    def __init__(self, cfg: QFormerConfig, vision_width: int) -> None:
        super().__init__()
        self.cfg = cfg
        cross_width = cfg.encoder_hidden_size or vision_width
        self.encoder_proj = (
            nn.Linear(vision_width, cross_width) if cfg.project_encoder and cross_width != vision_width else None
        )
        config_cls, model_cls = (
            (InstructBlipQFormerConfig, InstructBlipQFormerModel) if cfg.instruction_aware
            else (Blip2QFormerConfig, Blip2QFormerModel)
        )
        self.model = model_cls(config_cls(
            vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
            cross_attention_frequency=cfg.cross_attention_frequency, encoder_hidden_size=cross_width,
            max_position_embeddings=cfg.max_position_embeddings,
        ))
        self.query_tokens = nn.Parameter(torch.zeros(1, cfg.num_query_tokens, cfg.hidden_size))
        nn.init.normal_(self.query_tokens, std=0.02)
        if cfg.freeze:
            freeze(self)

    def forward(
        self,
        tokens: torch.Tensor,
        instruction_ids: torch.Tensor | None = None,
        instruction_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, L, D)`` vision tokens -> ``(B, num_query_tokens, hidden)`` query outputs."""
        if self.encoder_proj is not None:
            tokens = self.encoder_proj(tokens)
        queries = self.query_tokens.expand(tokens.shape[0], -1, -1)
        vision_mask = torch.ones(tokens.shape[:-1], dtype=torch.long, device=tokens.device)
        if not self.cfg.instruction_aware:
            out = self.model(query_embeds=queries, encoder_hidden_states=tokens, encoder_attention_mask=vision_mask)
            return out.last_hidden_state[:, : queries.shape[1]]
        query_mask = torch.ones(queries.shape[:-1], dtype=torch.long, device=tokens.device)
        out = self.model(
            input_ids=instruction_ids,
            attention_mask=torch.cat([query_mask, instruction_mask], dim=1),
            query_embeds=queries,
            encoder_hidden_states=tokens,
            encoder_attention_mask=vision_mask,
        )
        return out.last_hidden_state[:, : queries.shape[1]]
