"""Key translation for the original LAVIS checkpoints (``blip2_pretrained_*.pth``, ``eva_vit_g.pth``,
``instruct_blip_*_trimmed.pth``) into this project's names.

Facts, following transformers' ``convert_blip_2_original_to_pytorch.py``: LAVIS's EVA ViT keeps
separate ``q_bias``/``v_bias`` that become one ``qkv.bias = cat(q, 0, v)``; ``ln_vision`` is
the vision model's ``post_layernorm``; ``Qformer.bert.*`` loses ``bert`` and its attention
``self`` becomes ``attention``; ``{opt,t5,llm}_proj`` is the language projection. A BLIP-2
Q-Former has no text embeddings or text FFN, so those (and the MLM head ``Qformer.cls``) are
dropped; InstructBLIP's keeps them. Stage-2 ``.pth`` files hold no frozen weights: the ViT comes
from ``eva_vit_g.pth`` (40 blocks, of which BLIP-2 uses 39) and the LLM from its own folder.
"""

from __future__ import annotations

import logging
import re

import torch

logger = logging.getLogger(__name__)

_VIT_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_VIT_BLOCK_PARTS = {
    "norm1.": "layer_norm1.", "norm2.": "layer_norm2.", "attn.qkv.": "self_attn.qkv.",
    "attn.proj.": "self_attn.projection.", "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2.",
}
_VIT_TOP = {
    "cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding",
    "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
    "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
}
_PROJECTIONS = ("opt_proj.", "t5_proj.", "llm_proj.")
_LLMS = ("opt_model.", "t5_model.", "llm_model.")


def eva_vit_to_project(state: dict[str, torch.Tensor], num_layers: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """LAVIS EVA ViT-g keys (optionally under ``prefix``) -> ``vision.model.*``; blocks past
    ``num_layers`` (``eva_vit_g.pth`` has 40, BLIP-2 uses 39) are dropped."""
    out: dict[str, torch.Tensor] = {}
    biases: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        if key in _VIT_TOP:
            out[f"vision.model.{_VIT_TOP[key]}"] = value
            continue
        match = _VIT_BLOCK.match(key)
        if match is None:
            continue
        block, rest = int(match.group(1)), match.group(2)
        if block >= num_layers:
            continue
        if rest in ("attn.q_bias", "attn.v_bias"):
            biases.setdefault(block, {})[rest[5]] = value
            continue
        for old, new in _VIT_BLOCK_PARTS.items():
            if rest.startswith(old):
                out[f"vision.model.encoder.layers.{block}.{new}{rest[len(old):]}"] = value
    for block, qv in biases.items():
        out[f"vision.model.encoder.layers.{block}.self_attn.qkv.bias"] = torch.cat(
            [qv["q"], torch.zeros_like(qv["v"]), qv["v"]]
        )
    return out


def lavis_to_project(checkpoint: dict, num_vision_layers: int, instruction_aware: bool) -> dict[str, torch.Tensor]:
    """A LAVIS BLIP-2 / InstructBLIP checkpoint (``{"model": state}`` or a bare state dict)."""
    state = checkpoint.get("model", checkpoint)
    out = eva_vit_to_project(state, num_vision_layers, prefix="visual_encoder.")
    dropped = []
    for key, value in state.items():
        new = _rename(key, instruction_aware)
        if new is not None:
            out[new] = value
        elif not key.startswith("visual_encoder."):
            dropped.append(key)
    if dropped:
        logger.info("LAVIS checkpoint: %d keys with no counterpart dropped (e.g. %s)", len(dropped), dropped[0])
    return out


def _rename(key: str, instruction_aware: bool) -> str | None:
    if key.startswith("ln_vision."):
        return "vision.model.post_layernorm." + key[len("ln_vision."):]
    if key == "query_tokens":
        return "qformer.query_tokens"
    for prefix in _PROJECTIONS:
        if key.startswith(prefix):
            return "projection." + key[len(prefix):]
    for prefix in _LLMS:
        if key.startswith(prefix):
            return "language.model." + key[len(prefix):]
    if not key.startswith("Qformer.bert."):
        return None  # Qformer.cls, temp, vision_proj, text_proj, itm_head: not part of a captioner
    key = key[len("Qformer.bert."):]
    if key.startswith("embeddings."):
        name = key[len("embeddings."):]
        if name.startswith("LayerNorm."):
            where = "embeddings.layernorm." if instruction_aware else "layernorm."
            return "qformer.model." + where + name[len("LayerNorm."):]
        if instruction_aware and name.startswith(("word_embeddings.", "position_embeddings.")):
            return "qformer.model.embeddings." + name
        return None  # position_ids buffer; text embeddings of a BLIP-2 Q-Former
    text_ffn = re.match(r"^encoder\.layer\.\d+\.(intermediate|output)\.", key)
    if text_ffn and not instruction_aware:
        return None
    key = key.replace("attention.self.", "attention.attention.").replace("crossattention.self.", "crossattention.attention.")
    return "qformer.model." + key
