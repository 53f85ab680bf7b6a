"""What the GPU benchmarks share: the real BLIP-2 sizes with random weights (and tiny stand-ins
that run on a CPU in tests), local tokenizers for them, and the physical limits a measurement
is read against.

No weights are downloaded: every model is the project's captioner (or transformers' BLIP-2) at
the real sizes with random bf16 weights, created directly on the GPU. Random weights cost the
same FLOPs and bytes as trained ones, and ``min_length = max_length`` makes every caption
exactly ``NEW_TOKENS`` tokens long, so random weights cannot stop early.

The tokenizers are byte-level BPEs trained on the benchmark's own texts (so the prompts and the
training caption take about as many tokens as with the real tokenizers) with each family's
special tokens at the real ids; ids they do not know are dropped when decoding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import CaseResult, Context, Group, Variant

FRAMES = 8
NEW_TOKENS = 30  # LAVIS's default max_len for captions
PROMPT = "a video of"
CAPTION = "a man is playing a guitar on stage while people watch"
VICUNA_PROMPT = "a short video description:"
TEXTS = [PROMPT, CAPTION, VICUNA_PROMPT]

VISION = {
    # EVA ViT-g/14 as BLIP-2 uses it (the first 39 of its 40 blocks)
    "real": dict(arch="eva_vit_g", image_size=224, patch_size=14, hidden_size=1408, intermediate_size=6144,
                 num_layers=39, num_heads=16, precision="bf16"),
    "tiny": dict(arch="eva_vit_g", image_size=28, patch_size=14, hidden_size=32, intermediate_size=64,
                 num_layers=2, num_heads=4, precision="bf16"),
}
QFORMER = {
    "real": dict(num_query_tokens=32, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
    "tiny": dict(num_query_tokens=4, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                 vocab_size=600, max_position_embeddings=64),
}
_TINY_DECODER = dict(vocab_size=512, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     max_position_embeddings=256)


@dataclass(frozen=True)
class LLM:
    """A language model the paper pairs with BLIP-2: the registered captioner that carries it,
    its transformers config at both sizes, and its tokenizer family."""

    arch: str  # registry name of the captioner
    kind: str  # LanguageConfig.kind
    tokenizer: str  # key of TOKENIZERS
    config: dict[str, dict[str, Any]]  # size -> transformers config
    prompt: str = PROMPT
    max_txt_len: int = 32
    instruction_aware: bool = False  # InstructBLIP: the prompt enters the Q-Former too


OPT_IDS = dict(bos_token_id=2, eos_token_id=2, pad_token_id=1)
LLMS = {
    "opt-2.7b": LLM("blip2_video_opt", "decoder_only", "opt", {
        "real": dict(model_type="opt", vocab_size=50272, hidden_size=2560, num_hidden_layers=32,
                     num_attention_heads=32, ffn_dim=10240, max_position_embeddings=2048, word_embed_proj_dim=2560,
                     dropout=0.0, attention_dropout=0.0, **OPT_IDS),
        "tiny": dict(model_type="opt", ffn_dim=64, word_embed_proj_dim=32, dropout=0.0, attention_dropout=0.0,
                     **_TINY_DECODER, **OPT_IDS),
    }),
    "flan-t5-xl": LLM("blip2_video_t5", "encoder_decoder", "t5", {
        "real": dict(model_type="t5", vocab_size=32128, d_model=2048, d_kv=64, d_ff=5120, num_layers=24,
                     num_heads=32, feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                     decoder_start_token_id=0, pad_token_id=0, eos_token_id=1),
        "tiny": dict(model_type="t5", vocab_size=512, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                     feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                     decoder_start_token_id=0, pad_token_id=0, eos_token_id=1),
    }),
    "vicuna-7b": LLM("blip2_video_vicuna_instruct", "decoder_only", "llama", {
        "real": dict(model_type="llama", vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                     num_hidden_layers=32, num_attention_heads=32, max_position_embeddings=2048, rms_norm_eps=1e-6,
                     bos_token_id=1, eos_token_id=2, pad_token_id=0),
        "tiny": dict(model_type="llama", intermediate_size=64, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                     **_TINY_DECODER),
    }, prompt=VICUNA_PROMPT, max_txt_len=128, instruction_aware=True),
}


@dataclass(frozen=True)
class TokenizerFamily:
    specials: tuple[str, ...]  # in id order from 0
    template: str  # how one text is framed (tokenizers' TemplateProcessing)
    names: dict[str, str]  # transformers' special-token arguments


TOKENIZERS = {
    "opt": TokenizerFamily(("<s>", "<pad>", "</s>", "<unk>"), "</s> $A",  # OPT starts every text with </s>
                           dict(bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")),
    "t5": TokenizerFamily(("<pad>", "</s>", "<unk>"), "$A </s>",
                          dict(eos_token="</s>", pad_token="<pad>", unk_token="<unk>")),
    "llama": TokenizerFamily(("<unk>", "<s>", "</s>"), "<s> $A",
                             dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")),
    "bert": TokenizerFamily(("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"), "[CLS] $A [SEP]",
                            dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                 mask_token="[MASK]")),
}


def make_tokenizer(family: str, folder: Path) -> Path:
    """A transformers tokenizer folder of ``family`` (see the module docstring), written once."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    folder = folder / f"{family}_tokenizer"
    if (folder / "tokenizer.json").is_file():
        return folder
    spec = TOKENIZERS[family]
    tok = Tokenizer(models.BPE(unk_token=spec.names["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=list(spec.specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXTS * 10, trainer)
    ids = {token: i for i, token in enumerate(spec.specials)}
    tok.post_processor = processors.TemplateProcessing(
        single=spec.template, special_tokens=[(t, ids[t]) for t in spec.specials if t in spec.template.split()])
    PreTrainedTokenizerFast(tokenizer_object=tok, **spec.names).save_pretrained(folder)
    return folder


def build_captioner(llm: str, size: str, device: str | torch.device, workdir: Path,
                    lora: bool = False) -> torch.nn.Module:
    """The project's captioner for ``llm`` with random weights, created directly on ``device``;
    ``lora``: the paper's LoRA (r 8, alpha 16, dropout 0.05 on q and v) on the frozen LLM."""
    import lavis  # noqa: F401  (registers the models)
    from lavis.common.registry import registry
    from lavis.models.blip2_video.config import LanguageConfig, LoraConfig, QFormerConfig, VisionConfig

    spec = LLMS[llm]
    language = LanguageConfig(kind=spec.kind, config=dict(spec.config[size]),
                              tokenizer=str(make_tokenizer(spec.tokenizer, workdir)), prompt=spec.prompt,
                              max_txt_len=spec.max_txt_len, precision="bf16", lora=LoraConfig() if lora else None)
    qformer = QFormerConfig(**QFORMER[size], instruction_aware=spec.instruction_aware,
                            tokenizer=str(make_tokenizer("bert", workdir)) if spec.instruction_aware else None)
    with torch.device(device):  # billions of weights: initialise them where they will run
        return registry.get("model", spec.arch)(
            vision=VisionConfig(**VISION[size]), qformer=qformer, language=language, fusion="concat",
            random_init=True,
        ).eval()


@dataclass(frozen=True)
class Placement:
    """Where a GPU case runs and what its rows are read against."""

    size: str  # "real" or "tiny"
    device: torch.device
    name: str  # the device's name
    peak: tuple[float, float] | None  # (bf16 FLOP/s, bytes/s), when the GPU is known

    @property
    def limits(self) -> tuple[float, float] | None:
        """The peak to quote limits against: real sizes on a known GPU only."""
        return self.peak if self.size == "real" else None


def placement(ctx: Context, result: CaseResult) -> Placement | None:
    """The GPU; without one, the CPU at the tiny size (a smoke test of the code), and at full size
    None with the case marked skipped."""
    size = "tiny" if ctx.tiny else "real"
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return Placement(size, torch.device("cuda"), name, gpu_peak(name))
    if ctx.tiny:
        return Placement(size, torch.device("cpu"), "cpu", None)
    result.skipped = "no GPU on this machine"
    return None


def random_videos(batch: int, size: str, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(batch, FRAMES, 3, H, W)`` random frames: the models' work does not depend on the pixels."""
    s = VISION[size]["image_size"]
    return torch.randn(batch, FRAMES, 3, s, s, device=device, dtype=dtype)


def time_or_skip_oom(ctx: Context, group: Group, label: str, fn: Callable[[], Any], items: int,
                     **info: Any) -> tuple[Variant, Any] | None:
    """``ctx.time_variant`` (the variant and the last result), or None with the variant recorded
    as skipped when the GPU runs out of memory."""
    try:
        return ctx.time_variant(group, label, fn, items=items, **info)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        group.add(Variant(label, skipped="out of GPU memory"))
        return None


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_build(build, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``build(*args, **kwargs)`` and the seconds it took (model creation is part of a job's cost)."""
    start = time.perf_counter()
    out = build(*args, **kwargs)
    synchronize()
    return out, time.perf_counter() - start


# ---------------------------------------------------------------------- limits
# dense bf16 TFLOP/s and memory TB/s (datasheets), by a lower-case piece of the device name (first match)
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


def vit_flops_per_video(size: str = "real", frames: int = FRAMES) -> float:
    """Matmul FLOPs (2 per multiply-add) of the ViT over every frame's patches plus CLS."""
    v = VISION[size]
    d, f, layers, p = v["hidden_size"], v["intermediate_size"], v["num_layers"], v["patch_size"]
    patches = (v["image_size"] // p) ** 2
    n = patches + 1
    per_layer = 8 * n * d * d + 4 * n * n * d + 4 * n * d * f  # qkv + out, scores + mix, MLP
    embed = 2 * patches * 3 * p * p * d
    return float(frames * (layers * per_layer + embed))


def llm_parameters(llm: str, size: str = "real") -> dict[str, int]:
    """Exact parameter counts of the LLM (built on the meta device: no memory, no time): all of
    them, and those each token multiplies with (all but an untied input embedding, of which a
    token reads one row)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    spec = LLMS[llm]
    config = AutoConfig.for_model(**spec.config[size])
    auto = AutoModelForCausalLM if spec.kind == "decoder_only" else AutoModelForSeq2SeqLM
    with torch.device("meta"):
        model = auto.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is embedding  # OPT: the embedding is also the output layer
    return {"total": total, "matmul": total if tied else total - embedding.numel()}


def decode_bytes_per_step(llm: str, sequences: int, length: int, size: str = "real") -> float:
    """bf16 bytes one decoding step reads: every weight a token multiplies with, plus the KV cache
    of ``sequences`` sequences of ``length`` tokens."""
    config = LLMS[llm].config[size]
    kv = sequences * length * config["num_hidden_layers"] * 2 * config["hidden_size"] * 2
    return float(llm_parameters(llm, size)["matmul"] * 2 + kv)


def captioning_limit(batch: int, beams: int, peak: tuple[float, float], llm: str = "opt-2.7b",
                     size: str = "real") -> dict[str, float]:
    """Upper bounds on videos/s: the ViT at peak FLOP/s, ``NEW_TOKENS`` decoding steps at full
    memory bandwidth, and both in sequence (the Q-Former and the prompt pass are left out)."""
    flops, bandwidth = peak
    vit_s = batch * vit_flops_per_video(size) / flops
    mid_length = QFORMER[size]["num_query_tokens"] + 4 + NEW_TOKENS // 2  # prefix + prompt + half the caption
    llm_s = NEW_TOKENS * decode_bytes_per_step(llm, batch * beams, mid_length, size) / bandwidth
    return {"vit_limit_videos_per_s": batch / vit_s, "decode_limit_videos_per_s": batch / llm_s,
            "limit_videos_per_s": batch / (vit_s + llm_s)}


def training_flops_per_sample(llm: str, text_tokens: int, size: str = "real") -> float:
    """FLOPs of one CE sample with the ViT and the LLM frozen: the ViT's forward, and the LLM's
    forward plus the backward to its inputs (about as much again; LoRA adds little); the
    Q-Former (a few percent) is left out. ``text_tokens``: what the LLM reads besides the queries."""
    tokens = QFORMER[size]["num_query_tokens"] + text_tokens
    params = llm_parameters(llm, size)["matmul"]
    if LLMS[llm].kind == "encoder_decoder":  # each token passes through about half of the weights
        params //= 2
    return vit_flops_per_video(size) + 2 * 2 * params * tokens
