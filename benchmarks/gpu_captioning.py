"""``gpu_captioning``: videos/s of BLIP-2 ViT-g + Q-Former + OPT-2.7B from decoded frames.

The project's captioner (``blip2_video_opt``, random bf16 weights, see ``gpu_models``), 8 frames
at 224 px per video, batch 1..128, greedy and 5 beams, exactly 30 new tokens per caption. Next to
each figure, the limits it implies: the ViT-g's FLOPs over 8 x 257 tokens against the GPU's
dense bf16 peak, and the bytes each decoding step reads (weights plus KV cache) against its
memory bandwidth.

The comparison a user would otherwise make: transformers' ``Blip2ForConditionalGeneration`` at
the same sizes, captioning each of a video's 8 frames as an image (what an image captioner can
do with a video), against the project's one caption per video from all 8 frames.

Full size needs a GPU (skipped elsewhere); the tiny size runs anywhere (a test runs it on CPU).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from benchmarks import gpu_models as gm
from benchmarks.harness import Case, CaseResult, Context, Variant

logger = logging.getLogger(__name__)

BEAMS = (1, 5)
BATCHES = {"full": (1, 2, 4, 8, 16, 32, 64, 128), "tiny": (1, 2)}
VERSUS_BATCHES = {"full": (8, 32), "tiny": (2,)}  # videos per call in the transformers comparison
TRANSFORMERS = "transformers BLIP-2, frame by frame"
PROJECT = "project, 8 frames per caption"


def caption(model: torch.nn.Module, batch: int, beams: int, size: str, device: torch.device) -> list[str]:
    captions = model.generate({"video": gm.random_videos(batch, size, device)}, num_beams=beams,
                              max_length=gm.NEW_TOKENS, min_length=gm.NEW_TOKENS)
    gm.synchronize()
    return captions


def build_transformers_blip2(size: str, device: torch.device, workdir: Path):
    """transformers' BLIP-2 OPT at the same sizes (random bf16 weights) and its prompt ids: the
    query placeholders, then the tokenised prompt, as ``Blip2Processor`` builds them."""
    from transformers import AutoTokenizer, Blip2Config, Blip2ForConditionalGeneration

    v, q, opt = gm.VISION[size], gm.QFORMER[size], gm.LLMS["opt-2.7b"].config[size]
    config = Blip2Config(
        vision_config=dict(hidden_size=v["hidden_size"], intermediate_size=v["intermediate_size"],
                           num_hidden_layers=v["num_layers"], num_attention_heads=v["num_heads"],
                           image_size=v["image_size"], patch_size=v["patch_size"], qkv_bias=True,
                           layer_norm_eps=1e-6),
        qformer_config=dict(hidden_size=q["hidden_size"], num_hidden_layers=q["num_layers"],
                            num_attention_heads=q["num_heads"], intermediate_size=q["intermediate_size"],
                            encoder_hidden_size=v["hidden_size"], vocab_size=q.get("vocab_size", 30522)),
        text_config=dict(opt), num_query_tokens=q["num_query_tokens"], image_token_index=opt["vocab_size"] - 1,
    )
    with torch.device(device):
        model = Blip2ForConditionalGeneration._from_config(config, dtype=torch.bfloat16).eval()
    tokenizer = AutoTokenizer.from_pretrained(gm.make_tokenizer("opt", workdir))
    prompt = [config.image_token_index] * q["num_query_tokens"] + tokenizer(gm.PROMPT).input_ids
    return model, torch.tensor([prompt], device=device)


@torch.inference_mode()
def caption_frames(model: torch.nn.Module, prompt: torch.Tensor, videos: int, size: str,
                   device: torch.device) -> torch.Tensor:
    """Every frame of ``videos`` videos captioned as its own image (greedy, ``NEW_TOKENS`` tokens)."""
    pixels = gm.random_videos(videos, size, device, torch.bfloat16).flatten(0, 1)  # one image per frame
    ids = prompt.expand(pixels.shape[0], -1)
    out = model.generate(pixel_values=pixels, input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=1,
                         do_sample=False, max_new_tokens=gm.NEW_TOKENS, min_new_tokens=gm.NEW_TOKENS,
                         eos_token_id=2, pad_token_id=1)
    gm.synchronize()
    return out


def run(ctx: Context) -> CaseResult:
    result = CaseResult()
    size = "tiny" if ctx.tiny else "real"
    result.info.update(model_size=size, frames=gm.FRAMES, new_tokens=gm.NEW_TOKENS,
                       vit_gflops_per_video=gm.vit_flops_per_video(size) / 1e9,
                       opt_parameters=gm.llm_parameters("opt-2.7b", size)["total"])
    where = gm.placement(ctx, result)
    if where is None:
        return result
    device, peak = where.device, where.peak
    result.info.update(device=where.name, peak_bf16_tflops=peak and peak[0] / 1e12,
                       memory_tb_per_s=peak and peak[1] / 1e12)
    model, result.info["build_s"] = gm.timed_build(gm.build_captioner, "opt-2.7b", size, device, ctx.workdir)
    for beams in BEAMS:
        group = result.group(f"{beams} beam{'s' if beams > 1 else ''}", "batch 1", beams=beams)
        for batch in BATCHES[ctx.size]:
            timed = gm.time_or_skip_oom(ctx, group, f"batch {batch}",
                                        lambda b=batch: caption(model, b, beams, size, device), batch)
            if timed is not None and where.limits:
                _add_limits(timed[0], gm.captioning_limit(batch, beams, where.limits))
    versus_transformers(ctx, result, model, size, device)
    return result


def versus_transformers(ctx: Context, result: CaseResult, model: torch.nn.Module, size: str,
                        device: torch.device) -> None:
    hf_model, prompt = build_transformers_blip2(size, device, ctx.workdir)
    for videos in VERSUS_BATCHES[ctx.size]:
        group = result.group(f"greedy, {videos} videos: vs transformers", TRANSFORMERS, videos=videos)
        gm.time_or_skip_oom(ctx, group, TRANSFORMERS, lambda v=videos: caption_frames(hf_model, prompt, v, size, device),
                            videos, captions_per_video=gm.FRAMES)
        gm.time_or_skip_oom(ctx, group, PROJECT, lambda v=videos: caption(model, v, 1, size, device), videos,
                            captions_per_video=1)
    del hf_model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _add_limits(variant: Variant, limits: dict[str, float]) -> None:
    measured = variant.items / variant.timing.median
    variant.info.update({k: round(v, 2) for k, v in limits.items()})
    variant.info["fraction_of_limit"] = round(measured / limits["limit_videos_per_s"], 3)
    variant.info["fraction_of_vit_limit"] = round(measured / limits["vit_limit_videos_per_s"], 3)


CASE = Case(
    name="gpu_captioning",
    description=f"BLIP-2 ViT-g + Q-Former + OPT-2.7B (random bf16), {gm.FRAMES} frames at 224 px, from decoded "
                "frames: videos/s by batch size, greedy and 5 beams, against the ViT FLOP and decoding "
                "bandwidth limits and against transformers' BLIP-2 captioning frame by frame",
    baseline="batch 1; transformers Blip2ForConditionalGeneration frame by frame",
    target=None,
    run=run,
)
