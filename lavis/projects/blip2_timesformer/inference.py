"""Caption one video with any registered captioner (the built-in demo model by default).

    python lavis/projects/blip2_timesformer/inference.py --video lavis/demo/videos/demo_00.mp4
    python lavis/projects/blip2_timesformer/inference.py --video clip.mp4 \\
        --model blip2_timesformer --model_type caption --checkpoint output/.../checkpoint_best.pth --json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import torch

from lavis.common.log import setup_logging
from lavis.datasets.video import VideoDecodeError
from lavis.inference.cli_args import add_generation_args, add_model_args, generation_kwargs, processor_overrides
from lavis.common.dist import resolve_device
from lavis.inference.loading import LoadError, load_captioner
from lavis.inference.video_folder import frames_used

logger = logging.getLogger("inference")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", required=True, help="a video file")
    parser.add_argument("--json", action="store_true", help="print one JSON object (captions, frame timestamps)")
    add_model_args(parser)
    add_generation_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    generation = generation_kwargs(args)
    started = time.perf_counter()
    try:
        captioner = load_captioner(args.checkpoint, args.model, args.model_type, resolve_device(args.device),
                                   processor_overrides(args))
    except LoadError as err:
        logger.error("%s", err)
        return 2
    try:
        pixels, clip = captioner.processor(args.video)
    except (VideoDecodeError, OSError) as err:
        logger.error("cannot caption %s: %s", args.video, err)
        return 1
    torch.manual_seed(args.seed)
    with torch.inference_mode():
        captions = captioner.model.generate({"video": pixels.unsqueeze(0).to(captioner.model.device)}, **generation)
    if args.json:
        sys.stdout.write(json.dumps({
            "video": args.video, "captions": captions, "model": captioner.source, **frames_used(clip),
        }, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write("".join(c + "\n" for c in captions))
    logger.info("captioned %s in %.1f s (%d frames, model %s)", args.video, time.perf_counter() - started,
                len(clip.indices), captioner.source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
