"""Generation arguments under which a row's output depends on that row only, never on its batch-mates.

Two things in transformers' ``generate`` would otherwise leak between rows:

* the repetition penalty: transformers takes each row's leading pads in ``attention_mask`` as
  prompt tokens to skip, but generating from ``inputs_embeds`` leaves ``input_ids`` holding only the
  generated tokens, so a row padded to its longer batch-mates left its first generated tokens
  unpenalised. The penalty here sees every token in ``input_ids``, as it does for a row alone: the
  generated tokens (for an encoder-decoder, after the decoder's start token), never the prompt.
* sampling: ``torch.multinomial`` draws every row from one random stream, in batch order, so a
  sampled caption changes with the batch it is in. With a seed per row, each row draws from its own
  generator (see ``SeededRowSampler``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import GenerationConfig
from transformers.generation import (
    LogitsProcessor, LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
    TopKLogitsWarper, TopPLogitsWarper,
)

TRANSFORMERS_TOP_K = 50  # what transformers samples with when neither the model nor the call sets top_k


class SeededRowSampler(LogitsProcessor):
    """Samples each video's next tokens from its own generator, then leaves only those tokens
    possible, so that greedy decoding (which ``generate`` then runs) takes them.

    Rows are grouped by video (``per_video`` consecutive rows each, as ``num_return_sequences``
    would lay them out); a video's draws depend only on its seed and its own scores. The warpers are
    transformers' own, in the order its sampling applies them, so a lone row samples exactly what
    ``generate(do_sample=True)`` samples after ``torch.manual_seed(seed)``.
    """

    def __init__(self, seeds: list[int], per_video: int, warpers: list[LogitsProcessor]) -> None:
        self.seeds, self.per_video, self.warpers = seeds, per_video, warpers
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        if self.generators is None:
            self.generators = [torch.Generator(scores.device).manual_seed(s) for s in self.seeds]
        probs = torch.softmax(scores, dim=-1).split(self.per_video)
        picks = torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self.generators)])
        return torch.full_like(scores, float("-inf")).scatter_(1, picks, 0.0)


def row_independent(
    kwargs: dict[str, Any], seeds: list[int] | None, defaults: GenerationConfig
) -> tuple[dict[str, Any], LogitsProcessorList, int]:
    """``generate`` keyword arguments and logits processors that keep rows independent, and how
    many copies of each input row ``generate`` must be given (it decodes greedily, one sequence a
    row, once a ``SeededRowSampler`` draws the tokens).

    ``seeds`` (one per video) matter only when sampling; ``defaults`` is the model's generation
    config, for the sampling settings the call leaves out.
    """
    kwargs = dict(kwargs)
    processors = LogitsProcessorList()
    if kwargs.get("repetition_penalty", 1.0) != 1.0:
        # the same type as transformers' own: it takes that one's place in the list
        processors.append(RepetitionPenaltyLogitsProcessor(float(kwargs["repetition_penalty"])))
    if seeds is None or not kwargs.get("do_sample"):
        return kwargs, processors, 1
    if kwargs.get("num_beams", 1) != 1:
        raise ValueError("per-row seeds with sampling need num_beams=1 here (beam sampling runs row by row)")
    copies = kwargs.pop("num_return_sequences", 1)
    processors.append(SeededRowSampler(seeds, copies, _warpers(kwargs, defaults)))
    kwargs["do_sample"] = False
    for name in ("temperature", "top_k", "top_p"):
        kwargs.pop(name, None)
    return kwargs, processors, copies


def _warpers(kwargs: dict[str, Any], defaults: GenerationConfig) -> list[LogitsProcessor]:
    """Temperature, top-k and top-p, as transformers' sampling builds them (one token kept at least)."""
    def setting(name: str) -> Any:
        return kwargs[name] if kwargs.get(name) is not None else getattr(defaults, name, None)

    temperature, top_p = setting("temperature"), setting("top_p")
    top_k = setting("top_k")
    top_k = TRANSFORMERS_TOP_K if top_k is None else top_k
    warpers: list[LogitsProcessor] = []
    if temperature is not None and temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(float(temperature)))
    if top_k != 0:
        warpers.append(TopKLogitsWarper(top_k=top_k))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=float(top_p)))
    return warpers


@contextmanager
def seeded(device: torch.device, seed: int) -> Iterator[None]:
    """torch's random streams (CPU, and ``device``'s) start from ``seed``; restored afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@contextmanager
def penalty_notice_dropped() -> Iterator[None]:
    """Without transformers' notice that our repetition penalty replaces its own (intended)."""
    log = logging.getLogger("transformers.generation.utils")
    log.addFilter(_drop_penalty_notice)
    try:
        yield
    finally:
        log.removeFilter(_drop_penalty_notice)


def _drop_penalty_notice(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not ("RepetitionPenaltyLogitsProcessor" in message and "will take precedence" in message)
