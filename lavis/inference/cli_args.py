"""Command-line flags shared by ``inference.py`` and ``batch_inference.py``.

Names and defaults follow the reference BLIP-2 TimeSformer README; ``--image_size`` and
``--n_frames`` default to what the checkpoint was trained with (224 px and 8 frames for the
paper's models) because a ViT's position embeddings fix its input size.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", help="'demo' (the default), a save_pretrained folder, or train.py's checkpoint_*.pth")
    group.add_argument("--model", help="registered model name (python -m lavis list model), e.g. blip2_timesformer")
    group.add_argument("--model_type", help="the model's type, e.g. caption (its YAML says where the weights are)")
    group.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    group.add_argument("--n_frames", type=int, help="frames sampled per video (default: the checkpoint's, 8)")
    group.add_argument("--image_size", type=int, help="frame side in pixels (default: the checkpoint's, 224)")


def add_generation_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("generation")
    group.add_argument("--num_beams", type=int, default=5)
    group.add_argument("--max_length", type=int, default=30, help="most generated tokens")
    group.add_argument("--min_length", type=int, default=8, help="fewest generated tokens")
    group.add_argument("--repetition_penalty", type=float, default=1.2)
    group.add_argument("--length_penalty", type=float, default=1.0)
    group.add_argument("--use_nucleus_sampling", action="store_true", help="sample instead of beam search")
    group.add_argument("--top_p", type=float, default=0.9, help="nucleus sampling only")
    group.add_argument("--temperature", type=float, default=0.7, help="nucleus sampling only")
    group.add_argument("--num_captions", type=int, default=1, help="captions per video")
    group.add_argument("--seed", type=int, default=0, help="makes sampled captions reproducible")


def processor_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {"n_frms": args.n_frames, "image_size": args.image_size}
    return {k: v for k, v in overrides.items() if v is not None}


def generation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``model.generate``."""
    if args.num_captions > 1 and not args.use_nucleus_sampling and args.num_captions > args.num_beams:
        raise SystemExit(f"--num_captions {args.num_captions} needs --num_beams >= it (or --use_nucleus_sampling)")
    return {
        "use_nucleus_sampling": args.use_nucleus_sampling, "num_beams": args.num_beams,
        "max_length": args.max_length, "min_length": args.min_length, "top_p": args.top_p,
        "temperature": args.temperature, "repetition_penalty": args.repetition_penalty,
        "length_penalty": args.length_penalty, "num_captions": args.num_captions,
    }


def generation_from_flags(flags: list[str]) -> dict[str, Any]:
    """What ``generation_kwargs`` gives for these generation flags, the others at the CLIs'
    defaults (for code that captions as the CLIs do)."""
    parser = argparse.ArgumentParser()
    add_generation_args(parser)
    return generation_kwargs(parser.parse_args(flags))
