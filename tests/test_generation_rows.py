"""A video's captions never depend on its batch-mates: batch-N equals each row captioned alone, for
every head, decoding mode, prompt layout and repetition penalty (tiny random models, CPU)."""

import logging

import pytest
import torch

from lavis.common.registry import registry
from lavis.models.blip2_video.config import LanguageConfig, QFormerConfig, VisionConfig
from tests.test_blip2_video import video
from tests.tiny_models import TINY_LLAMA, TINY_OPT, TINY_QFORMER, TINY_T5, TINY_VISION, make_tokenizer

# Prompts of 1, 6 and 3 words: the short ones are padded by up to 5 tokens in a batch.
PER_VIDEO = ["what", "describe what happens in the video", "a video of"]
DECODING = {
    "greedy": dict(num_beams=1),
    "beams": dict(num_beams=3, num_captions=2, length_penalty=0.5),
    "sampling": dict(use_nucleus_sampling=True, num_beams=1, num_captions=2, top_p=0.95, temperature=1.5),
}
SEEDS = [11, 22, 33]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One tiny captioner per head; Vicuna's Q-Former reads the prompt too (InstructBLIP)."""
    root = tmp_path_factory.mktemp("tokenizers")
    tok = {style: str(make_tokenizer(root / style, style)) for style in ("opt", "t5", "llama", "bert")}
    specs = {
        "opt": ("blip2_video_opt", QFormerConfig(**TINY_QFORMER), LanguageConfig(
            kind="decoder_only", config=TINY_OPT, tokenizer=tok["opt"])),
        "flant5": ("blip2_video_t5", QFormerConfig(**TINY_QFORMER), LanguageConfig(
            kind="encoder_decoder", config=TINY_T5, tokenizer=tok["t5"])),
        "vicuna": ("blip2_video_vicuna_instruct",
                   QFormerConfig(**TINY_QFORMER, instruction_aware=True, tokenizer=tok["bert"]),
                   LanguageConfig(kind="decoder_only", config=TINY_LLAMA, tokenizer=tok["llama"])),
    }
    built = {}
    for head, (name, qformer, language) in specs.items():
        torch.manual_seed(0)
        built[head] = registry.get("model", name)(
            vision=VisionConfig(**TINY_VISION), qformer=qformer, language=language, random_init=True).eval()
    return built


def batch_and_alone(model, samples: dict, **generation) -> tuple[list[str], list[str]]:
    """The captions of the whole batch, and those of each video captioned by itself."""
    batched = model.generate(samples, **generation)
    alone = []
    for row in range(len(samples["video"])):
        alone += model.generate({k: v[row : row + 1] for k, v in samples.items()}, **generation)
    return batched, alone


@pytest.mark.parametrize("penalty", [1.0, 1.2])
@pytest.mark.parametrize("prompts", ["shared", "per_video"])
@pytest.mark.parametrize("decoding", list(DECODING))
@pytest.mark.parametrize("head", ["opt", "flant5", "vicuna"])
def test_batch_equals_each_video_alone(models, head, decoding, prompts, penalty):
    samples = {"video": video(3, 2, seed=4)}
    if prompts == "per_video":
        samples["prompt"] = PER_VIDEO
    if decoding == "sampling":
        samples["seed"] = SEEDS
    batched, alone = batch_and_alone(models[head], samples, max_length=10, min_length=3,
                                     repetition_penalty=penalty, **DECODING[decoding])
    assert batched == alone


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("head", ["opt", "flant5", "vicuna"])
def test_a_lone_video_is_penalised_as_transformers_penalises_it(models, head, num_beams):
    """The penalty counts what transformers counts for one unpadded row generated from embeddings:
    the generated tokens (after T5's decoder start token), not the visual prefix or the prompt."""
    model, clip, prompt = models[head], video(1, 2, seed=6), ["describe what happens in the video"]
    generation = dict(num_beams=num_beams, max_length=10, min_length=3, repetition_penalty=3.0)
    ours = model.generate({"video": clip, "prompt": prompt}, **generation)
    lm = model.language
    text = lm.tokenizer(prompt, return_tensors="pt")
    embeds, mask = lm._with_prefix(model.encode(clip, prompt), text.input_ids, text.attention_mask)
    out = lm.model.generate(inputs_embeds=embeds, attention_mask=mask, eos_token_id=[lm.tokenizer.eos_token_id],
                            pad_token_id=lm.tokenizer.pad_token_id, num_beams=num_beams, max_new_tokens=10,
                            min_new_tokens=3, repetition_penalty=3.0)
    assert ours == [t.strip() for t in lm.tokenizer.batch_decode(out, skip_special_tokens=True)]
    if num_beams == 1:  # (beam search penalises log-probabilities: a near-certain token stays first)
        assert ours != model.generate({"video": clip, "prompt": prompt}, **{**generation, "repetition_penalty": 1.0})


@pytest.mark.parametrize("head", ["opt", "flant5", "vicuna"])
def test_seeded_sampling_of_a_lone_video_is_transformers_sampling(models, head):
    """Per-video seeds change where the draws come from, not what is drawn: alone, a video samples
    what transformers' own sampling gives after ``torch.manual_seed(seed)``."""
    model, clip = models[head], video(1, 2, seed=5)
    generation = dict(use_nucleus_sampling=True, num_beams=1, num_captions=3, top_p=0.9, temperature=1.5,
                      max_length=8, min_length=2, repetition_penalty=1.2)
    seeded = model.generate({"video": clip, "seed": [7]}, **generation)
    torch.manual_seed(7)
    assert seeded == model.generate({"video": clip}, **generation)
    assert len(set(seeded)) > 1  # the three captions draw different tokens
    assert model.generate({"video": clip, "seed": [8]}, **generation) != seeded
    almost_greedy = {**generation, "top_p": 1e-6, "num_captions": 1}  # top-p is applied before the draw
    greedy = model.generate({"video": clip}, num_beams=1, max_length=8, min_length=2, repetition_penalty=1.2)
    assert model.generate({"video": clip, "seed": [7]}, **almost_greedy) == greedy


def test_seeded_beam_sampling_is_independent_of_batch_mates(models):
    samples = {"video": video(3, 2, seed=4), "prompt": PER_VIDEO, "seed": SEEDS}
    generation = dict(use_nucleus_sampling=True, num_beams=3, num_captions=2, temperature=1.5, max_length=8,
                      min_length=2, repetition_penalty=1.2)
    batched, alone = batch_and_alone(models["opt"], samples, **generation)
    assert batched == alone
    torch.manual_seed(0)  # the rows' seeds decide, not the global stream
    assert models["opt"].generate(samples, **generation) == batched


def test_seeds_must_match_the_videos(models):
    with pytest.raises(ValueError, match="2 seeds for 3 videos"):
        models["opt"].generate({"video": video(3, 2), "seed": [1, 2]}, use_nucleus_sampling=True, num_beams=1)


def test_the_penalty_replaces_transformers_own_quietly(models):
    from transformers.utils import logging as hf_logging

    hf_logging.warning_once.cache_clear()  # transformers says each notice once per process
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    log = logging.getLogger("transformers.generation.utils")
    log.addHandler(handler)
    try:
        models["opt"].generate({"video": video(2, 2), "prompt": PER_VIDEO[:2]}, num_beams=1, max_length=4,
                               repetition_penalty=1.2)
    finally:
        log.removeHandler(handler)
    assert not [m for m in seen if "take precedence" in m]
