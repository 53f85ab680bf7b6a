"""``gpu_training``: samples/s and peak GPU memory of cross-entropy training steps on one GPU.

Three recipes of the paper, each the project's captioner at the real sizes with random bf16
weights (``gpu_models``), 8 frames at 224 px, the ViT-g frozen and the Q-Former trainable, each
part in its own precision (bf16 ViT and LLM, fp32 Q-Former) with no autocast: the step runner
with ``run.amp: false`` (its default, bf16 autocast on CUDA, is not measured here):
- OPT-2.7B, frozen;
- FlanT5-XL with LoRA (r 8, alpha 16 on q and v): only the adapters of the LLM train;
- Vicuna-7B (InstructBLIP: the prompt enters the Q-Former too), frozen, sharded with the
  runner's FSDP (``shard_model``) over a one-process group: what ``run.wrapper: fsdp`` does,
  measured on one GPU.
Next to each figure, the FLOP limit it implies (``gpu_models.training_flops_per_sample`` against
the GPU's dense bf16 peak). Full size needs a GPU; the tiny size runs anywhere.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
from collections.abc import Iterator

import torch

from benchmarks import gpu_models as gm
from benchmarks.harness import Case, CaseResult, Context

logger = logging.getLogger(__name__)

RECIPES = {  # llm -> (LoRA, FSDP)
    "opt-2.7b": (False, False),
    "flan-t5-xl": (True, False),
    "vicuna-7b": (False, True),
}
BATCHES = {"full": (8, 16, 32, 64), "tiny": (2,)}


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: int, size: str,
               device: torch.device) -> float:
    """One cross-entropy step on random frames and a fixed caption; returns the loss."""
    loss = model({"video": gm.random_videos(batch, size, device), "text_input": [gm.CAPTION] * batch})["loss"]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    gm.synchronize()
    return loss.item()


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


@contextlib.contextmanager
def one_process_group(device: torch.device) -> Iterator[None]:
    """A process group of this process alone, for FSDP outside a launcher."""
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=dist.HashStore(), rank=0,
                            world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def text_tokens(model: torch.nn.Module) -> int:
    """Tokens the LLM reads besides the visual queries: the prompt and the caption."""
    tokenizer, prompt = model.language.tokenizer, model.language.cfg.prompt
    return len(tokenizer(prompt).input_ids) + len(tokenizer(gm.CAPTION).input_ids)


def measure_recipe(ctx: Context, result: CaseResult, llm: str, where: gm.Placement) -> None:
    size, device = where.size, where.device
    lora, fsdp = RECIPES[llm]
    label = f"{llm}{' + LoRA' if lora else ''}{' + FSDP (1 GPU)' if fsdp else ''}"
    model, build_s = gm.timed_build(gm.build_captioner, llm, size, device, ctx.workdir, lora=lora)
    model.train()
    group = result.group(label, f"batch {BATCHES[ctx.size][0]}", build_s=round(build_s, 1),
                         trainable_parameters=sum(p.numel() for p in trainable_parameters(model)),
                         llm_parameters=gm.llm_parameters(llm, size)["total"])
    flops = gm.training_flops_per_sample(llm, text_tokens(model), size)
    with one_process_group(device) if fsdp else contextlib.nullcontext():
        if fsdp:
            from lavis.runners.parallel import shard_model

            shard_model(model, device, world_size=1)
        trainable = trainable_parameters(model)  # after sharding: FSDP replaces the parameters
        before = trainable[0].detach().clone()
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)
        for batch in BATCHES[ctx.size]:
            name = f"batch {batch}"
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            timed = gm.time_or_skip_oom(ctx, group, name,
                                        lambda b=batch: train_step(model, optimizer, b, size, device), batch)
            if timed is None:
                optimizer.zero_grad(set_to_none=True)  # the failed step's gradients
                continue
            variant, loss = timed
            if not math.isfinite(loss):
                raise RuntimeError(f"{label}, batch {batch}: loss {loss}")
            variant.info["loss"] = round(loss, 4)
            if torch.cuda.is_available():
                variant.info["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if where.limits:
                limit = where.limits[0] / flops
                variant.info["flop_limit_samples_per_s"] = round(limit, 1)
                variant.info["fraction_of_flop_limit"] = round(batch / variant.timing.median / limit, 3)
        group.info["weights_updated"] = not torch.equal(before, trainable[0].detach())
        del optimizer, trainable
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run(ctx: Context) -> CaseResult:
    result = CaseResult()
    where = gm.placement(ctx, result)
    if where is None:
        return result
    result.info.update(device=where.name, model_size=where.size, frames=gm.FRAMES,
                       vit_gflops_per_sample=gm.vit_flops_per_video(where.size) / 1e9)
    for llm in RECIPES:
        try:
            measure_recipe(ctx, result, llm, where)
        except Exception as err:  # recorded: one recipe that breaks must not lose the others' numbers
            logger.exception("%s failed", llm)
            result.info.setdefault("failed", {})[llm] = f"{type(err).__name__}: {err}"
    return result


CASE = Case(
    name="gpu_training",
    description="CE training on one GPU, ViT-g frozen, Q-Former trainable (random bf16 weights): OPT-2.7B frozen, "
                "FlanT5-XL with LoRA, Vicuna-7B frozen under FSDP; samples/s, peak memory, FLOP limit",
    baseline="each recipe at its smallest batch",
    target=None,
    run=run,
)
