"""Typed sections of a BLIP-2 video captioner's config (``model.vision``, ``model.qformer``, ...).

Defaults describe the real sizes (EVA ViT-g/14 as BLIP-2 uses it, the 12-layer Q-Former with 32
queries); tests shrink them. Each section maps one-to-one onto the part it builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Precision = Literal["fp32", "fp16", "bf16"]


@dataclass
class VisionConfig:
    """The frozen image or video encoder."""

    arch: Literal["eva_vit_g", "timesformer"] = "eva_vit_g"
    image_size: int = 224
    patch_size: int = 14
    hidden_size: int = 1408
    intermediate_size: int = 6144
    num_layers: int = 39  # EVA ViT-g has 40 blocks; BLIP-2 uses the first 39
    num_heads: int = 16
    num_frames: int = 8  # TimeSformer's temporal position embeddings
    layer_norm_eps: float = 1e-6
    freeze: bool = True
    precision: Precision = "fp32"  # LAVIS casts the frozen ViT to fp16 on GPUs
    grad_checkpointing: bool = False


@dataclass
class QFormerConfig:
    """The querying transformer between the vision encoder and the language model."""

    num_query_tokens: int = 32
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    cross_attention_frequency: int = 2
    vocab_size: int = 30522
    max_position_embeddings: int = 512
    # Width its cross-attention expects; default: the vision encoder's. When it differs from the
    # encoder's (TimeSformer 768 vs ViT-g 1408), either the cross-attention starts fresh at the
    # encoder's width (leave this unset) or ``project_encoder`` inserts Linear(encoder -> this).
    encoder_hidden_size: int | None = None
    project_encoder: bool = False
    instruction_aware: bool = False  # InstructBLIP: the instruction text enters the Q-Former too
    tokenizer: str | None = None  # BERT tokenizer folder (instruction-aware only)
    max_instruction_len: int = 128
    freeze: bool = False


@dataclass
class LoraConfig:
    """LoRA on the language model (peft); the paper: r=8, alpha=16, dropout 0.05 on T5 q, v."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q", "v"])


@dataclass
class LanguageConfig:
    """The language model head and how captions are framed for it."""

    kind: Literal["decoder_only", "encoder_decoder"] = "decoder_only"
    path: str | None = None  # a transformers folder (config + weights + tokenizer) of the LLM
    config: dict[str, Any] | None = None  # an inline transformers config (random init; tests)
    tokenizer: str | None = None  # default: ``path``, else the ``pretrained`` BLIP-2 folder
    prompt: str = "a video of"
    end_of_text: str | None = None  # appended to training captions; default: the tokenizer's EOS
    max_txt_len: int = 32
    freeze: bool = True
    precision: Precision = "fp32"
    lora: LoraConfig | None = None
    trust_remote_code: bool = False
