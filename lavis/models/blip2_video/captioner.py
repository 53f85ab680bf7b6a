"""The BLIP-2 video captioner: one composition of registered-by-config parts.

    frames (B, T, C, H, W) -> VisionEncoder -> temporal fusion + QFormer -> projection -> LanguageHead

Temporal fusion (no new parameters):
  ``concat``         the tokens of all T frames form one sequence the queries attend to (the
                     paper's choice; the LLM still sees ``num_query_tokens`` tokens);
  ``frame_queries``  the Q-Former runs per frame and the T x Q outputs are concatenated;
  ``mean``           the Q-Former runs per frame and its outputs are averaged.
Training and generation always use the same strategy.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase

from lavis.common import dist
from lavis.common.registry import registry
from lavis.models.base_model import BaseModel
from lavis.models.blip2_video import checkpoints
from lavis.models.blip2_video.config import LanguageConfig, QFormerConfig, VisionConfig
from lavis.models.blip2_video.language import LanguageHead
from lavis.models.blip2_video.parts import keep_frozen_in_eval
from lavis.models.blip2_video.qformer import QFormer
from lavis.models.blip2_video.vision import VisionEncoder

logger = logging.getLogger(__name__)

Fusion = Literal["concat", "frame_queries", "mean"]


class Blip2VideoCaptioner(BaseModel):
    """ViT-g or TimeSformer -> Q-Former -> OPT / FlanT5 / Vicuna, for video captioning."""

    registry_name: ClassVar[str] = ""

    def __init__(
        self,
        vision: VisionConfig,
        qformer: QFormerConfig,
        language: LanguageConfig,
        fusion: Fusion = "concat",
        pretrained: str | None = None,
        vision_weights: str | None = None,
        finetuned: str | None = None,
        random_init: bool = False,
    ) -> None:
        """``pretrained``: a transformers BLIP-2 / InstructBLIP folder or a LAVIS ``.pth``;
        ``vision_weights``: ``eva_vit_g.pth`` or a TimeSformer folder, when ``pretrained`` lacks
        the encoder; ``finetuned``: a folder saved by ``save_pretrained`` (loaded last, strictly);
        ``random_init``: allow parts without weights to stay random (tests, and models trained
        from scratch such as the tiny ``shapes`` captioner)."""
        super().__init__()
        for path, key in ((pretrained, "model.pretrained"), (vision_weights, "model.vision_weights"),
                          (finetuned, "model.finetuned"), (language.path, "model.language.path")):
            if path is not None:  # fail before building (and randomly initialising) billions of weights
                checkpoints.require_exists(path, key)
        self.fusion = fusion
        self.vision = VisionEncoder(vision)
        self.qformer = QFormer(qformer, self.vision.width)
        lm_config, tokenizer = _language_config_and_tokenizer(language, pretrained)
        self.language = LanguageHead(language, lm_config, tokenizer)
        self.projection = nn.Linear(qformer.hidden_size, self.language.width)
        self.qformer_tokenizer = _qformer_tokenizer(qformer, pretrained)

        if finetuned is None:  # a fine-tuned folder holds every weight; loading others first is waste
            checkpoints.load_initial_weights(self, pretrained, vision_weights, random_init)
        if language.lora is not None:
            self.language.add_lora()
        if finetuned is not None:
            checkpoints.load_finetuned(self, finetuned)

    # ------------------------------------------------------------------ encoding
    def encode(self, video: torch.Tensor, prompts: list[str] | None = None) -> torch.Tensor:
        """``(B, T, C, H, W)`` -> the LLM's visual prefix ``(B, Q', width)``."""
        tokens = self.vision(video)  # (B, T', N, D)
        b, t = tokens.shape[:2]
        ids, mask = self._instruction(prompts, b)
        if self.fusion == "concat":
            queries = self.qformer(tokens.flatten(1, 2), ids, mask)
        else:
            per_frame = self.qformer(
                tokens.flatten(0, 1),
                None if ids is None else ids.repeat_interleave(t, 0),
                None if mask is None else mask.repeat_interleave(t, 0),
            ).unflatten(0, (b, t))  # (B, T, Q, H)
            queries = per_frame.flatten(1, 2) if self.fusion == "frame_queries" else per_frame.mean(1)
        return self.projection(queries)

    def _instruction(self, prompts: list[str] | None, batch: int):
        if not self.qformer.cfg.instruction_aware:
            return None, None
        texts = prompts if prompts is not None else [self.language.cfg.prompt] * batch
        enc = self.qformer_tokenizer(
            texts, padding="longest", truncation=True, max_length=self.qformer.cfg.max_instruction_len,
            return_tensors="pt",
        ).to(self.projection.weight.device)
        return enc.input_ids, enc.attention_mask

    def new_parameter_prefixes(self) -> tuple[str, ...]:
        """Parameters this configuration adds to a BLIP-2 checkpoint, trained from scratch.

        With an encoder narrower or wider than ViT-g (TimeSformer: 768 vs 1408), either a new
        projection feeds the pretrained cross-attention, or the cross-attention's key and value
        projections (the only parts whose shape depends on the encoder) start fresh.
        """
        if self.qformer.encoder_proj is not None:
            return ("qformer.encoder_proj.",)
        if self.vision.cfg.arch == "timesformer":
            layers = range(0, self.qformer.cfg.num_layers, self.qformer.cfg.cross_attention_frequency)
            return tuple(
                f"qformer.model.encoder.layer.{i}.crossattention.attention.{part}."
                for i in layers for part in ("key", "value")
            )
        return ()

    # ------------------------------------------------------------------ API
    def forward(self, samples: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Cross-entropy on ``text_input``; or, when ``scst_captions`` (k per video) and
        ``scst_advantages`` are given, the self-critical loss -(r - b) * log p / length."""
        prompts = samples.get("prompt")
        prefix = self.encode(samples["video"], prompts)
        if "scst_captions" not in samples:
            return {"loss": self.language.loss(prefix, list(samples["text_input"]), prompts)}
        captions = list(samples["scst_captions"])
        k = len(captions) // prefix.shape[0]
        if prompts is not None:
            prompts = [p for p in prompts for _ in range(k)]
        logp = self.language.sequence_logprobs(prefix.repeat_interleave(k, 0), captions, prompts)
        advantages = torch.as_tensor(samples["scst_advantages"], dtype=logp.dtype, device=logp.device)
        return {"loss": -(advantages * logp).mean(), "logprobs": logp}

    @torch.no_grad()
    def generate(
        self,
        samples: dict[str, Any],
        use_nucleus_sampling: bool = False,
        num_beams: int = 5,
        max_length: int = 30,
        min_length: int = 8,
        top_p: float = 0.9,
        temperature: float = 1.0,
        repetition_penalty: float = 1.0,
        length_penalty: float = 1.0,
        num_captions: int = 1,
    ) -> list[str]:
        """Captions for a batch (``num_captions`` per video, grouped by video); a video's captions
        never depend on its batch-mates.

        ``samples``: ``video``, and optionally ``prompt`` and ``seed`` (one per video). Sampling
        with seeds draws each video's tokens from its own seed, so its captions are those it gets
        alone; without seeds sampling draws from torch's random stream in batch order.
        ``max_length`` / ``min_length`` count generated tokens, never prompt tokens.
        """
        sampling = {"do_sample": True, "top_p": top_p, "temperature": temperature} if use_nucleus_sampling else {
            "do_sample": False}
        prompts = samples.get("prompt")
        seeds = samples.get("seed")
        if seeds is not None and len(seeds) != len(samples["video"]):
            raise ValueError(f"samples['seed'] has {len(seeds)} seeds for {len(samples['video'])} videos")
        with dist.gathered_parameters(self):
            prefix = self.encode(samples["video"], prompts)
            return self.language.generate(
                prefix, prompts, None if seeds is None else [int(s) for s in seeds],
                num_beams=num_beams, max_new_tokens=max_length,
                min_new_tokens=min(min_length, max_length),
                repetition_penalty=repetition_penalty, length_penalty=length_penalty,
                num_return_sequences=num_captions, **sampling,
            )

    def fsdp_units(self) -> list[nn.Module]:
        """What FSDP shards separately: the encoders (always called through ``forward``) and each
        block of the LLM; the LLM's embeddings and head stay with the root's group."""
        lm = self.language.model
        base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        blocks = set(getattr(base, "_no_split_modules", None) or ())
        return [self.vision, self.qformer, *(m for m in base.modules() if type(m).__name__ in blocks)]

    def train(self, mode: bool = True) -> Blip2VideoCaptioner:
        super().train(mode)
        keep_frozen_in_eval(self)
        return self

    def save_pretrained(self, directory: str, preprocess: dict[str, Any] | None = None) -> None:
        """Write a self-contained folder that ``from_pretrained`` (or ``model.finetuned``) loads;
        ``preprocess`` (the processors section) lets inference decode videos as training did."""
        checkpoints.save_captioner(self, directory, preprocess)

    @classmethod
    def from_pretrained(cls, directory: str, **overrides: Any) -> Blip2VideoCaptioner:
        """Load a folder written by ``save_pretrained``; ``overrides`` replace top-level keys."""
        from lavis.common.schema import check_section, fields_of

        config = checkpoints.read_captioner_config(directory)
        arch = config.pop("arch")
        model_cls = registry.get("model", arch)
        kwargs = check_section({**config, **overrides}, fields_of(model_cls), "model")
        return model_cls(**{"finetuned": directory, "random_init": True, **kwargs})


def _language_config_and_tokenizer(cfg: LanguageConfig, pretrained: str | None):
    """The LLM's transformers config and tokenizer, from local folders only."""
    if cfg.config is not None:
        config = AutoConfig.for_model(**cfg.config)
    elif cfg.path is not None:
        config = AutoConfig.from_pretrained(
            checkpoints.require_dir(cfg.path, "model.language.path"), local_files_only=True,
            trust_remote_code=cfg.trust_remote_code,
        )
    elif pretrained is not None and (blip2 := checkpoints.blip2_folder_config(pretrained)) is not None:
        config = blip2.text_config
    else:
        raise ValueError(
            "no language model configured: set model.language.path to a local transformers folder "
            "(e.g. ${cache_root:facebook/opt-2.7b}) or model.pretrained to a BLIP-2 folder"
        )
    source = cfg.tokenizer or cfg.path or pretrained
    if source is None:
        raise ValueError("no tokenizer: set model.language.tokenizer to a local tokenizer folder")
    tokenizer = AutoTokenizer.from_pretrained(
        checkpoints.require_dir(source, "model.language.tokenizer"), local_files_only=True,
        trust_remote_code=cfg.trust_remote_code,
    )
    return config, tokenizer


def _qformer_tokenizer(cfg: QFormerConfig, pretrained: str | None) -> PreTrainedTokenizerBase | None:
    if not cfg.instruction_aware:
        return None
    source = cfg.tokenizer or (f"{pretrained}/qformer_tokenizer" if pretrained else None)
    if source is None:
        raise ValueError("an instruction-aware Q-Former needs model.qformer.tokenizer (a BERT tokenizer folder)")
    return AutoTokenizer.from_pretrained(
        checkpoints.require_dir(source, "model.qformer.tokenizer"), local_files_only=True
    )


# The registered names are configurations of the one class above (default YAMLs per type).
@registry.register_model("blip2_video_opt")
class Blip2VideoOPT(Blip2VideoCaptioner):
    """BLIP-2 video captioner with an OPT language model (ViT-g, concat fusion)."""

    registry_name = "blip2_video_opt"
    DEFAULT_CONFIGS = {
        "pretrain_opt2.7b": "models/blip2_video/pretrain_opt2.7b.yaml",
        "pretrain_opt6.7b": "models/blip2_video/pretrain_opt6.7b.yaml",
        "caption_opt2.7b": "models/blip2_video/caption_opt2.7b.yaml",
        "caption_opt6.7b": "models/blip2_video/caption_opt6.7b.yaml",
        "tiny_shapes": "models/blip2_video/tiny_shapes.yaml",
    }
    default_model_type = "pretrain_opt2.7b"


@registry.register_model("blip2_video_t5")
class Blip2VideoT5(Blip2VideoCaptioner):
    """BLIP-2 video captioner with a FlanT5 language model (ViT-g, concat fusion)."""

    registry_name = "blip2_video_t5"
    DEFAULT_CONFIGS = {
        "pretrain_flant5xl": "models/blip2_video/pretrain_flant5xl.yaml",
        "caption_flant5xl": "models/blip2_video/caption_flant5xl.yaml",
    }
    default_model_type = "pretrain_flant5xl"


@registry.register_model("blip2_video_vicuna_instruct")
class Blip2VideoVicunaInstruct(Blip2VideoCaptioner):
    """InstructBLIP video captioner with Vicuna-7B (instruction-aware Q-Former)."""

    registry_name = "blip2_video_vicuna_instruct"
    DEFAULT_CONFIGS = {"vicuna7b": "models/blip2_video/vicuna7b.yaml"}
    default_model_type = "vicuna7b"


@registry.register_model("blip2_timesformer")
class Blip2TimeSformer(Blip2VideoCaptioner):
    """BLIP-2 with a TimeSformer video encoder (K400) in place of ViT-g."""

    registry_name = "blip2_timesformer"
    DEFAULT_CONFIGS = {
        "pretrain": "models/blip2_timesformer/pretrain.yaml",
        "caption": "models/blip2_timesformer/caption.yaml",
    }
    default_model_type = "pretrain"
