"""Stage 1 of the tiny captioner: pretrain its vision encoder to see the synthetic shapes.

Why: a ViT this small, trained from scratch on 4,000 captioned clips, learns colours and counts
but names shapes barely above chance. BLIP-2 starts from a pretrained ViT; this is the tiny
model's equivalent. Frames are rendered on the fly from random scenes (an endless supply, never
the dataset's clips), drawn at the video size and shrunk to the model's input as the video reader
does, and labelled from the scene itself: which (shape, colour) pairs are visible, the
background colour and the object count. The encoder is written as a ``transformers``
``Blip2VisionModel`` folder, which ``model.vision_weights`` loads.

    python scripts/pretrain_shapes_vision.py --out output/shapes_vision          # ~10 min, 2 cores
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn
from tqdm import tqdm

from lavis.datasets.synthetic.render import background, render_frame
from lavis.datasets.synthetic.scenes import BACKGROUNDS, COLOURS, SHAPES, object_state, sample_scene
from lavis.datasets.video.resize import resize_frames
from lavis.models.blip2_video.config import VisionConfig
from lavis.models.blip2_video.vision import VisionEncoder
from lavis.processors.video_processors import NORMALIZATION

logger = logging.getLogger("pretrain_shapes_vision")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "models" / "blip2_video" / "tiny_shapes.yaml"
PAIRS = [(s, c) for s in SHAPES for c in COLOURS]
MAX_OBJECTS = 2
NUM_FRAMES, FPS = 24, 8  # scene timing only matters for where objects are in the drawn frame


def render_batch(rng: np.random.Generator, n: int, video_size: int, image_size: int, min_scale: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random frames ``(n, 3, S, S)`` (0-255) and their labels: pair multi-hot, background, count."""
    frames, pairs, backs, counts = [], [], [], []
    for _ in range(n):
        scene = sample_scene(rng, "pretrain", NUM_FRAMES, FPS)
        frame = int(rng.integers(NUM_FRAMES))
        image = render_frame(scene, frame, video_size, background(scene, video_size))
        side = round(video_size * math.sqrt(rng.uniform(min_scale, 1.0)))  # the train crop's scale
        top, left = rng.integers(video_size - side + 1, size=2)
        image = resize_frames(image[None, top:top + side, left:left + side], image_size)[0]  # as the reader
        visible = [(o.shape, s.colour) for o in scene.objects
                   if (s := object_state(o, frame, scene.num_frames)).visible]
        target = torch.zeros(len(PAIRS))
        for pair in visible:
            target[PAIRS.index(pair)] = 1.0
        frames.append(torch.from_numpy(image).permute(2, 0, 1))
        pairs.append(target)
        backs.append(list(BACKGROUNDS).index(scene.background))
        counts.append(len(visible))
    return torch.stack(frames).float(), torch.stack(pairs), torch.tensor(backs), torch.tensor(counts)


class FrameProbe(nn.Module):
    """The encoder plus linear heads on its mean patch token; only the encoder is kept."""

    def __init__(self, encoder: VisionEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        width = encoder.width
        self.pairs = nn.Linear(width, len(PAIRS))
        self.background = nn.Linear(width, len(BACKGROUNDS))
        self.count = nn.Linear(width, MAX_OBJECTS + 1)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled = self.encoder(pixels.unsqueeze(1))[:, 0, 1:].mean(1)
        return self.pairs(pooled), self.background(pooled), self.count(pooled)


def loss_and_accuracy(probe: FrameProbe, batch, mean, std) -> tuple[torch.Tensor, float]:
    """Summed loss, and the share of frames whose visible (shape, colour) set is exactly right."""
    pixels, pairs, backs, counts = batch
    pair_logits, back_logits, count_logits = probe((pixels / 255.0 - mean) / std)
    loss = (nn.functional.binary_cross_entropy_with_logits(pair_logits, pairs) * len(PAIRS) / MAX_OBJECTS
            + nn.functional.cross_entropy(back_logits, backs) + nn.functional.cross_entropy(count_logits, counts))
    exact = ((pair_logits > 0).float() == pairs).all(1).float().mean().item()
    return loss, exact


def check_replaceable(out: Path) -> None:
    """``--out`` is replaced at the end: refuse a folder that is not an earlier encoder of ours."""
    if not out.exists():
        return
    config = out / "config.json"
    if not out.is_dir() or not config.is_file() or '"blip_2_vision_model"' not in config.read_text():
        raise SystemExit(f"--out {out} exists and is not a Blip2VisionModel folder; give a new or such a folder")


def save_encoder(encoder: VisionEncoder, out: Path) -> None:
    """Write the encoder as a transformers folder, beside the target and renamed into place."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    encoder.model.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the Blip2VisionModel weights")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="model YAML whose model.vision to build")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--video_size", type=int, default=128, help="size the frames are drawn at (the dataset's)")
    parser.add_argument("--min_scale", type=float, default=0.8, help="smallest random crop, as in caption training")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--eval_every", type=int, default=500)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_replaceable(args.out)

    torch.manual_seed(args.seed)
    vision = OmegaConf.to_container(OmegaConf.load(args.config).model.vision)
    cfg = VisionConfig(**{**vision, "freeze": False})
    probe = FrameProbe(VisionEncoder(cfg))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZATION["eva_clip"])
    optimizer = torch.optim.AdamW(probe.parameters(), lr=args.lr, weight_decay=0.05)
    warmup = max(1, args.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / args.steps))))
    rng = np.random.default_rng(args.seed)
    held_out = render_batch(np.random.default_rng(args.seed + 1), 512, args.video_size, cfg.image_size, 1.0)

    start = time.time()
    bar = tqdm(range(args.steps), desc="pretrain vision", unit="step")
    for step in bar:
        loss, exact = loss_and_accuracy(probe, render_batch(rng, args.batch_size, args.video_size, cfg.image_size,
                                                            args.min_scale), mean, std)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(probe.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", exact=f"{exact:.2f}")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            probe.eval()
            with torch.no_grad():
                _, held_out_exact = loss_and_accuracy(probe, held_out, mean, std)
            probe.train()
            logger.info("step %d: held-out exact (shape, colour) sets %.1f%%", step + 1, 100 * held_out_exact)
    save_encoder(probe.encoder, args.out)
    logger.info("pretrained vision encoder: %d steps in %.0f s; held-out frames with exactly the right "
                "(shape, colour) set: %.1f%%; written to %s", args.steps, time.time() - start,
                100 * held_out_exact, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
