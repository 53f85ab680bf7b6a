"""Language-model heads: decoder-only (OPT, Vicuna/LLaMA) and encoder-decoder (FlanT5).

Both take the projected query outputs as a soft visual prefix. Decoder-only: the LLM reads
``[queries, BOS, prompt, caption, EOS]`` and the loss covers only the caption and EOS (query
and prompt positions are masked), as LAVIS's ``blip2_opt`` does. Encoder-decoder: the encoder
reads ``[queries, prompt, EOS]`` and the decoder is trained on the caption. ``generate`` gives
both heads the same arguments with the same meaning; lengths count generated tokens only.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, PretrainedConfig, PreTrainedTokenizerBase

from lavis.models.blip2_video import decoding
from lavis.models.blip2_video.config import LanguageConfig
from lavis.models.blip2_video.parts import DTYPES, freeze


class LanguageHead(nn.Module):
    def __init__(self, cfg: LanguageConfig, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__()
        self.cfg = cfg
        self.decoder_only = cfg.kind == "decoder_only"
        auto = AutoModelForCausalLM if self.decoder_only else AutoModelForSeq2SeqLM
        # built in its precision: a 7B model never exists in fp32 first
        self.model = auto.from_config(config, dtype=DTYPES[cfg.precision], trust_remote_code=cfg.trust_remote_code)
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:  # LLaMA/Vicuna: pad positions are masked anyway
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        if cfg.freeze:
            freeze(self.model)

    @property
    def width(self) -> int:
        return self.model.get_input_embeddings().embedding_dim

    def add_lora(self) -> None:
        """Wrap the LLM with LoRA adapters (only the adapters train)."""
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        lora = self.cfg.lora
        self.model = get_peft_model(self.model, PeftLoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules),
        ))

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids)

    def _tokenize(self, texts: list[str], side: str, max_length: int | None = None) -> Any:
        self.tokenizer.padding_side = side
        return self.tokenizer(
            texts, padding="longest", truncation=max_length is not None, max_length=max_length,
            return_tensors="pt",
        ).to(self.model.device)

    def _prompts(self, batch: int, prompt: str | list[str] | None) -> list[str]:
        prompt = self.cfg.prompt if prompt is None else prompt
        return [prompt] * batch if isinstance(prompt, str) else list(prompt)

    # ------------------------------------------------------------------ training
    def loss(self, prefix: torch.Tensor, captions: list[str], prompt: str | list[str] | None = None) -> torch.Tensor:
        """Mean cross-entropy over the caption tokens (and EOS) of the batch."""
        logits, labels = self._teacher_forced(prefix, captions, prompt)
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)

    def sequence_logprobs(
        self, prefix: torch.Tensor, captions: list[str], prompt: str | list[str] | None = None
    ) -> torch.Tensor:
        """Length-normalised log-probability of each caption (differentiable; for SCST)."""
        logits, labels = self._teacher_forced(prefix, captions, prompt)
        mask = labels != -100
        token_lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (token_lp * mask).sum(1) / mask.sum(1).clamp(min=1)

    def _teacher_forced(
        self, prefix: torch.Tensor, captions: list[str], prompt: str | list[str] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and aligned labels (-100 where no loss) for captions given the visual prefix."""
        prefix = prefix.to(self.model.dtype)
        prompts = self._prompts(len(captions), prompt)
        end = self.cfg.end_of_text if self.cfg.end_of_text is not None else self.tokenizer.eos_token
        if self.decoder_only:
            texts = [f"{p} {c}".strip() + end for p, c in zip(prompts, captions)]
            text = self._tokenize(texts, "right", self.cfg.max_txt_len)
            labels = text.input_ids.masked_fill(text.attention_mask == 0, -100)
            for row, p in enumerate(prompts):  # the prompt (and BOS) are inputs, not targets
                labels[row, : len(self.tokenizer(p).input_ids)] = -100
            logits = self.decoder_logits(prefix, text.input_ids, text.attention_mask)
            full = torch.cat([torch.full(prefix.shape[:2], -100, device=labels.device), labels], dim=1)
            return logits[:, :-1], full[:, 1:]
        source = self._tokenize(prompts, "right")
        if self.cfg.end_of_text is not None:
            captions = [c + self.cfg.end_of_text for c in captions]
        target = self._tokenize(captions, "right", self.cfg.max_txt_len)
        labels = target.input_ids.masked_fill(target.attention_mask == 0, -100)
        embeds, mask = self._with_prefix(prefix, source.input_ids, source.attention_mask)
        logits = self.model(
            inputs_embeds=embeds, attention_mask=mask, decoder_attention_mask=target.attention_mask, labels=labels
        ).logits
        return logits, labels

    def decoder_logits(self, prefix: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        embeds, full_mask = self._with_prefix(prefix, ids, mask)
        return self.model(inputs_embeds=embeds, attention_mask=full_mask).logits

    def _with_prefix(self, prefix: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor):
        ones = torch.ones(prefix.shape[:2], dtype=mask.dtype, device=mask.device)
        return torch.cat([prefix, self.embed(ids)], dim=1), torch.cat([ones, mask], dim=1)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self, prefix: torch.Tensor, prompt: str | list[str] | None = None, seeds: list[int] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Captions (``num_return_sequences`` per row, grouped by row); a row's captions never
        depend on its batch-mates. ``seeds`` (one per row) make sampling per row too: a row then
        samples what it samples alone with its seed (see ``decoding``)."""
        prompts = self._prompts(prefix.shape[0], prompt)
        if seeds is not None and kwargs.get("do_sample") and kwargs.get("num_beams", 1) > 1:
            return self._beam_sample_row_by_row(prefix, prompts, seeds, **kwargs)
        prefix = prefix.to(self.model.dtype)
        text = self._tokenize(prompts, "left" if self.decoder_only else "right")
        embeds, mask = self._with_prefix(prefix, text.input_ids, text.attention_mask)
        if self.decoder_only:
            embeds, mask = _pads_first(embeds, mask)
        eos = [self.tokenizer.eos_token_id]
        if self.cfg.end_of_text:
            eos += self.tokenizer(self.cfg.end_of_text, add_special_tokens=False).input_ids[-1:]
        kwargs, processors, copies = decoding.row_independent(kwargs, seeds, self.model.generation_config)
        embeds, mask = embeds.repeat_interleave(copies, 0), mask.repeat_interleave(copies, 0)
        with warnings.catch_warnings(), decoding.penalty_notice_dropped():
            # The penalty skipping the visual prefix and prompt is what a captioner wants.
            warnings.filterwarnings("ignore", "Passing `repetition_penalty` with `inputs_embeds`")
            out = self.model.generate(
                inputs_embeds=embeds, attention_mask=mask, eos_token_id=eos,
                pad_token_id=self.tokenizer.pad_token_id, logits_processor=processors, **kwargs,
            )
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def _beam_sample_row_by_row(
        self, prefix: torch.Tensor, prompts: list[str], seeds: list[int], **kwargs: Any
    ) -> list[str]:
        """Beam sampling draws over all of a row's beams at once, from torch's one random stream:
        each row runs alone, that stream seeded with the row's seed."""
        captions: list[str] = []
        for row, seed in enumerate(seeds):
            with decoding.seeded(prefix.device, seed):
                captions += self.generate(prefix[row : row + 1], prompts[row : row + 1], **kwargs)
        return captions


def _pads_first(embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's padding (left padding of the prompt, after the prefix) to the front."""
    order = torch.argsort(mask, dim=1, stable=True)  # zeros (pads) first, others keep their order
    return embeds.gather(1, order.unsqueeze(-1).expand_as(embeds)), mask.gather(1, order)
