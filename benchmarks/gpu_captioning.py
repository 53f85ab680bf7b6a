"""``gpu_captioning``: videos/s of BLIP-2 ViT-g + Q-Former + OPT-2.7B on one GPU, against its limits.

The model is the project's captioner class (``blip2_video_opt``) at the real sizes with random
bf16 weights (``random_init=True``; no download): 8 frames at 224 px per video, batch 1..64,
greedy and 5 beams, exactly 30 new tokens per caption (``min_length = max_length``, so random
weights cannot stop early and every run does the same work). Next to each measurement:
- the ViT-g limit: its FLOPs over 8 x 257 tokens against the GPU's dense bf16 peak;
- the LLM limit: bytes read per decoding step (weights plus KV cache) against memory bandwidth;
their sum bounds videos/s from above (Q-Former and the prompt pass are left out).

Runs only where CUDA is available; elsewhere the case is reported as skipped, with the analysis
of the real sizes. The tokenizer is a small byte-level BPE with OPT's special tokens, built
locally: it encodes the prompt, and the ids it does not know are dropped when decoding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import Case, CaseResult, Context, Variant

logger = logging.getLogger(__name__)

FRAMES = 8
NEW_TOKENS = 30
BEAMS = (1, 5)
BATCHES = {"full": (1, 2, 4, 8, 16, 32, 64), "tiny": (1, 2)}
TRAIN_BATCHES = {"full": (8, 16, 32, 64), "tiny": (2,)}
PROMPT = "a video of"
TRAIN_CAPTION = "a man is playing a guitar on stage while people watch"


@dataclass(frozen=True)
class Sizes:
    vision: dict[str, Any]
    qformer: dict[str, Any]
    opt: dict[str, Any]


OPT_SPECIALS = dict(bos_token_id=2, eos_token_id=2, pad_token_id=1)
SIZES = {
    # EVA ViT-g/14 as BLIP-2 uses it (39 blocks), the 12-layer Q-Former, OPT-2.7B
    "real": Sizes(
        vision=dict(arch="eva_vit_g", image_size=224, patch_size=14, hidden_size=1408, intermediate_size=6144,
                    num_layers=39, num_heads=16, precision="bf16"),
        qformer=dict(num_query_tokens=32, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
        opt=dict(model_type="opt", vocab_size=50272, hidden_size=2560, num_hidden_layers=32, num_attention_heads=32,
                 ffn_dim=10240, max_position_embeddings=2048, word_embed_proj_dim=2560, dropout=0.0,
                 attention_dropout=0.0, **OPT_SPECIALS),
    ),
    "tiny": Sizes(
        vision=dict(arch="eva_vit_g", image_size=28, patch_size=14, hidden_size=32, intermediate_size=64,
                    num_layers=2, num_heads=4, precision="bf16"),
        qformer=dict(num_query_tokens=4, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                     vocab_size=64, max_position_embeddings=64),
        opt=dict(model_type="opt", vocab_size=512, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 ffn_dim=64, max_position_embeddings=128, word_embed_proj_dim=32, dropout=0.0,
                 attention_dropout=0.0, **OPT_SPECIALS),
    ),
}

# dense bf16 TFLOP/s and memory TB/s, by a lower-case piece of torch.cuda.get_device_name (first match)
GPU_PEAKS: list[tuple[str, float, float]] = [
    ("h200", 989.0, 4.8),
    ("h100 nvl", 835.0, 3.9),
    ("h100 pcie", 756.0, 2.0),
    ("h100", 989.0, 3.35),  # SXM, "NVIDIA H100 80GB HBM3"
    ("a100-sxm4-80gb", 312.0, 2.039),
    ("a100 80gb pcie", 312.0, 1.935),
    ("a100", 312.0, 1.555),  # 40 GB, SXM or PCIe
]


def gpu_peak(name: str) -> tuple[float, float] | None:
    """(bf16 FLOP/s, bytes/s) for a known GPU name, else None."""
    lowered = name.lower()
    for piece, tflops, tbps in GPU_PEAKS:
        if piece in lowered:
            return tflops * 1e12, tbps * 1e12
    return None


def vit_flops_per_video(vision: dict[str, Any], frames: int = FRAMES) -> float:
    """Matmul FLOPs (2 per multiply-add) of the ViT over every frame's patches plus CLS."""
    d, f, layers, p = vision["hidden_size"], vision["intermediate_size"], vision["num_layers"], vision["patch_size"]
    patches = (vision["image_size"] // p) ** 2
    n = patches + 1
    per_layer = 8 * n * d * d + 4 * n * n * d + 4 * n * d * f  # qkv + out, scores + mix, MLP
    embed = 2 * patches * 3 * p * p * d
    return float(frames * (layers * per_layer + embed))


def opt_parameters(opt: dict[str, Any]) -> int:
    """OPT's parameter count from its config (embeddings tied to the output layer)."""
    d, f, layers = opt["hidden_size"], opt["ffn_dim"], opt["num_hidden_layers"]
    per_layer = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d  # attention, MLP, two layer norms
    return opt["vocab_size"] * d + (opt["max_position_embeddings"] + 2) * d + layers * per_layer + 2 * d


def llm_bytes_per_step(opt: dict[str, Any], sequences: int, length: int, bytes_per_value: int = 2) -> float:
    """Weights plus the KV cache read by one decoding step of ``sequences`` sequences."""
    kv = sequences * length * opt["num_hidden_layers"] * 2 * opt["hidden_size"] * bytes_per_value
    return float(opt_parameters(opt) * bytes_per_value + kv)


def limit_videos_per_s(sizes: Sizes, batch: int, beams: int, peak: tuple[float, float]) -> dict[str, float]:
    """Upper bounds: the ViT at peak FLOP/s, then NEW_TOKENS steps at full memory bandwidth."""
    flops, bandwidth = peak
    vit_s = batch * vit_flops_per_video(sizes.vision) / flops
    mid_length = sizes.qformer["num_query_tokens"] + 4 + NEW_TOKENS // 2  # prefix + prompt + half the caption
    llm_s = NEW_TOKENS * llm_bytes_per_step(sizes.opt, batch * beams, mid_length) / bandwidth
    return {"vit_s": vit_s, "llm_s": llm_s, "videos_per_s": batch / (vit_s + llm_s)}


def make_tokenizer(folder: Path) -> Path:
    """A byte-level BPE saved as a transformers folder, with OPT's ids for <s>, <pad>, </s>, <unk>
    and OPT's habit of starting every text with </s>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if (folder / "tokenizer.json").is_file():
        return folder
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([f"{PROMPT} a man is playing a guitar on stage"] * 10, trainer)
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", special_tokens=[("</s>", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(folder)
    return folder


def build_captioner(size: str, device: str | torch.device, tokenizer_dir: Path) -> torch.nn.Module:
    """The project's OPT captioner with random weights, created directly on ``device``."""
    import lavis  # noqa: F401  (registers the models)
    from lavis.common.registry import registry
    from lavis.models.blip2_video.config import LanguageConfig, QFormerConfig, VisionConfig

    sizes = SIZES[size]
    language = LanguageConfig(kind="decoder_only", config=dict(sizes.opt), tokenizer=str(make_tokenizer(tokenizer_dir)),
                              prompt=PROMPT, precision="bf16")
    with torch.device(device):  # billions of weights: initialise them where they will run
        model = registry.get("model", "blip2_video_opt")(
            vision=VisionConfig(**sizes.vision), qformer=QFormerConfig(**sizes.qformer), language=language,
            fusion="concat", random_init=True,
        )
    return model.eval()


def caption(model: torch.nn.Module, batch: int, beams: int, image_size: int, device: str | torch.device) -> list[str]:
    video = torch.randn(batch, FRAMES, 3, image_size, image_size, device=device)
    captions = model.generate({"video": video}, num_beams=beams, max_length=NEW_TOKENS, min_length=NEW_TOKENS)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return captions


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: int, image_size: int,
               device: str | torch.device) -> float:
    """One cross-entropy step as the paper's CE recipe trains: the ViT and the LLM frozen (bf16),
    the Q-Former and the projection trainable; returns the loss."""
    video = torch.randn(batch, FRAMES, 3, image_size, image_size, device=device)
    loss = model({"video": video, "text_input": [TRAIN_CAPTION] * batch})["loss"]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return loss.item()


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def analysis(sizes: Sizes) -> dict[str, Any]:
    return {
        "vit_gflops_per_video": vit_flops_per_video(sizes.vision) / 1e9,
        "opt_parameters": opt_parameters(sizes.opt),
        "opt_weight_gb_bf16": opt_parameters(sizes.opt) * 2 / 1e9,
        "frames": FRAMES, "new_tokens": NEW_TOKENS,
    }


def run(ctx: Context) -> CaseResult:
    result = CaseResult()
    size = "tiny" if ctx.tiny else "real"
    result.info.update(model_size=size, **analysis(SIZES[size]))
    if size != "real":
        result.info["real_sizes"] = analysis(SIZES["real"])
    if not torch.cuda.is_available():
        result.skipped = "no GPU on this machine"
        return result
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    peak = gpu_peak(name)
    result.info.update(gpu=name, peak_bf16_tflops=peak and peak[0] / 1e12, memory_tb_per_s=peak and peak[1] / 1e12)
    model = build_captioner(size, device, ctx.folder("opt_tokenizer"))
    image_size = SIZES[size].vision["image_size"]
    for beams in BEAMS:
        group = result.group(f"{beams} beam{'s' if beams > 1 else ''}", "batch 1", beams=beams)
        for batch in BATCHES[ctx.size]:
            label = f"batch {batch}"
            try:
                variant, _ = ctx.time_variant(group, label, lambda b=batch: caption(model, b, beams, image_size, device),
                                              items=batch)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                group.add(Variant(label, skipped="out of GPU memory"))
                continue
            if peak is not None:
                bound = limit_videos_per_s(SIZES[size], batch, beams, peak)
                variant.info.update(bound)
                variant.info["fraction_of_bound"] = batch / variant.timing.median / bound["videos_per_s"]
    measure_training(ctx, result, model.train(), image_size, device)
    return result


def measure_training(ctx: Context, result: CaseResult, model: torch.nn.Module, image_size: int,
                     device: torch.device) -> None:
    """Samples/s and peak GPU memory of CE steps (ViT and LLM frozen, Q-Former trainable)."""
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=1e-5)
    batches = TRAIN_BATCHES[ctx.size]
    group = result.group("CE training, ViT frozen", f"batch {batches[0]}")
    for batch in batches:
        label = f"batch {batch}"
        torch.cuda.reset_peak_memory_stats()
        try:
            variant, _ = ctx.time_variant(group, label, lambda b=batch: train_step(model, optimizer, b, image_size, device),
                                          items=batch)
        except torch.cuda.OutOfMemoryError:
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            group.add(Variant(label, skipped="out of GPU memory"))
            continue
        variant.info["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30


CASE = Case(
    name="gpu_captioning",
    description=f"BLIP-2 ViT-g + Q-Former + OPT-2.7B (random bf16), {FRAMES} frames at 224 px: captioning videos/s "
                "by batch size; CE training samples/s and peak memory (ViT and LLM frozen)",
    baseline="batch 1",
    target=None,
    run=run,
)
