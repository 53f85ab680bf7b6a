"""Write the demo videos shipped in lavis/demo/videos: a few synthetic shapes clips (a seed the
demo model never trained on) and ``scenes.json`` saying what happens in each.

    python scripts/make_demo_videos.py [--out lavis/demo/videos] [--videos 8] [--seed 2026]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from pathlib import Path

from lavis.common.log import setup_logging
from lavis.datasets.synthetic import generate
from lavis.inference.loading import DEMO_VIDEOS

logger = logging.getLogger("make_demo_videos")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEMO_VIDEOS))
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    setup_logging()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, num_videos=max(args.videos, 10), seed=args.seed)
        scenes = json.loads((Path(tmp) / "scenes.json").read_text())
        chosen = {}
        for k, (video_id, scene) in enumerate(sorted(scenes.items())[: args.videos]):
            name = f"demo_{k:02d}.mp4"
            shutil.copyfile(Path(tmp) / "videos" / f"{video_id}.mp4", out / name)
            chosen[name] = {key: scene[key] for key in ("background", "texture", "objects")}
    (out / "scenes.json").write_text(json.dumps(chosen, indent=1) + "\n")
    logger.info("wrote %d demo videos and scenes.json to %s", len(chosen), out)


if __name__ == "__main__":
    main()
