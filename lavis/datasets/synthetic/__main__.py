"""``python -m lavis.datasets.synthetic --out DIR --videos N --seed S [--qa N] ...``."""

from __future__ import annotations

import argparse
import logging

from lavis.datasets.synthetic.generate import generate

logger = logging.getLogger("lavis.datasets.synthetic")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lavis.datasets.synthetic",
        description="Write the synthetic 'shapes' video-caption dataset.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--videos", type=int, required=True, help="captioned videos (split 80/10/10)")
    parser.add_argument("--seed", type=int, required=True, help="same seed, same files (byte for byte)")
    parser.add_argument("--qa", type=int, default=0, help="frame-selection questions (one video each)")
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels (even)")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0, help="video length")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = generate(args.out, args.videos, args.seed, args.qa, args.size, args.fps, args.seconds)
    except ValueError as err:
        parser.error(str(err))
    videos = summary["videos"]
    logger.info(
        "wrote %d/%d/%d train/val/test videos (%d captions), %d questions to %s in %.1fs",
        videos["train"], videos["val"], videos["test"], sum(summary["captions"].values()),
        summary["qa"], summary["out_dir"], summary["seconds"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
