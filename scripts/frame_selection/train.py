"""The reference project's training command line, as a thin front end to the runner.

    python scripts/frame_selection/train.py --json_path train.json --image_path mined/ --video_path videos/ \
        --caption_setting 1 --output_path output/selector --ratio 0.2 \
        --model_name openai/clip-vit-large-patch14 --loss_setting 1

builds the options of ``lavis/projects/clip_frame_selector/train_loss<N>.yaml`` and runs the same
job as ``train.py`` (also under ``torchrun``). ``--model_name`` is a local folder, or a hub name
looked up under ``$LAVIS_CACHE_ROOT`` (nothing is downloaded). The trained selector is written
with ``save_pretrained`` to ``<output_path>/<job>/pretrained``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from lavis.common.config import cache_root  # noqa: E402
from lavis.common.launch import train_job  # noqa: E402


def model_folder(name: str) -> str:
    """A local folder as given, else the hub name under the cache root."""
    return name if Path(name).expanduser().is_dir() else str(cache_root() / name)


def options(args: argparse.Namespace) -> list[str]:
    data = "datasets.qa_frame_mining"
    opts = [
        f"{data}.json_path={args.json_path}", f"{data}.mined_root={args.image_path}",
        f"{data}.video_root={args.video_path}", f"{data}.caption_setting={args.caption_setting}",
        f"{data}.ratio={args.ratio}", f"model.path={model_folder(args.model_name)}",
        f"model.loss_setting={args.loss_setting}", f"run.output_dir={args.output_path}",
    ]
    for flag, key in (("epochs", "run.max_epochs"), ("lr", "run.init_lr"), ("batch_size", "run.batch_size_train"),
                      ("accum_steps", "run.accum_grad_iters"), ("dinov2_path", "run.embedder.path")):
        if getattr(args, flag) is not None:
            opts.append(f"{key}={getattr(args, flag)}")
    if args.ratio == 0:
        opts.append("run.valid_splits=[]")
    return opts + args.options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json_path", required=True, help="QA file: {data: [{id, question, choices, support_frames, video_path}]}")
    parser.add_argument("--image_path", required=True, help="negative-mining output (frames_true/, frames_neg/, manifest.json)")
    parser.add_argument("--video_path", required=True, help="folder the QA file's video paths are relative to")
    parser.add_argument("--caption_setting", type=int, choices=(1, 2, 3), default=1, help="1 question, 2 choices, 3 both")
    parser.add_argument("--output_path", required=True)
    parser.add_argument("--ratio", type=float, default=0.2, help="validation fraction (split by video; 0 = no validation)")
    parser.add_argument("--model_name", default="openai/clip-vit-large-patch14")
    parser.add_argument("--loss_setting", type=int, choices=(1, 2, 3), default=1, help="1 BCE, 2 BCE positives, 3 contrastive")
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch_size", type=int)
    parser.add_argument("--accum_steps", type=int)
    parser.add_argument("--dinov2_path", help="DINOv2 folder for sim_m validation (default: run config)")
    parser.add_argument("--cfg-path", dest="cfg_path", help="run YAML (default: train_loss<N>.yaml)")
    parser.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="more config overrides")
    args = parser.parse_args(argv)
    cfg_path = args.cfg_path or str(ROOT / f"lavis/projects/clip_frame_selector/train_loss{args.loss_setting}.yaml")
    train_job(cfg_path, options(args))


if __name__ == "__main__":
    main()
