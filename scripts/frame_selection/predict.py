"""Pick the frames of a video most relevant to a question with a trained CLIP frame selector.

    python scripts/frame_selection/predict.py --model output/selector/<job>/pretrained \
        --video clip.mp4 --question "Khi nào xe màu đỏ rẽ trái?" --choices "A. 1s" "B. 3s" --save_dir frames/

prints one line per chosen frame (time and score), or JSON with ``--json``; ``--save_dir`` writes
the frames as PNG at ``--output_size``. Exit status: 0 done, 1 unreadable video, 2 bad arguments
or missing model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from PIL import Image  # noqa: E402

from lavis.common.io import atomic_open  # noqa: E402
from lavis.common.log import setup_logging  # noqa: E402
from lavis.datasets.qa_frames import QASample, caption_text  # noqa: E402
from lavis.datasets.video import VideoDecodeError  # noqa: E402
from lavis.models.clip_frame_selector import ClipFrameSelector  # noqa: E402
from lavis.models.clip_frame_selector.select import get_top4_frames  # noqa: E402
from lavis.common.dist import resolve_device  # noqa: E402

logger = logging.getLogger("predict")


def parse_size(text: str) -> tuple[int, int] | None:
    if text.lower() in ("none", "original"):
        return None
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--question", required=True)
    parser.add_argument("--choices", nargs="*", default=[])
    parser.add_argument("--model", required=True, help="a selector folder (train output 'pretrained/') or a CLIP folder")
    parser.add_argument("--caption_setting", type=int, choices=(1, 2, 3), help="default: 3 with --choices, else 1")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--segments", type=int, help="timeline segments (default: k)")
    parser.add_argument("--fps_target", type=float, default=2.0, help="candidate frames per second")
    parser.add_argument("--output_size", default="1920x1080", help="WxH of saved frames, or 'original'")
    parser.add_argument("--save_dir", help="write the chosen frames here as PNG")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        model = ClipFrameSelector.from_pretrained(args.model)
        size = parse_size(args.output_size)
    except (FileNotFoundError, ValueError) as err:
        logger.error("%s", err)
        return 2
    setting = args.caption_setting or (3 if args.choices else 1)
    text = caption_text(QASample("cli", args.question, tuple(args.choices), None, (), args.video), setting)
    try:
        frames, scores, times = get_top4_frames(
            args.video, text, model, device=resolve_device(args.device), k=args.k,
            fps_target=args.fps_target, segments=args.segments, output_size=size,
        )
    except VideoDecodeError as err:
        logger.error("%s", err)
        return 1
    files = []
    if args.save_dir:
        for rank, (frame, t) in enumerate(zip(frames, times)):
            path = Path(args.save_dir) / f"frame{rank}_{round(t * 1000):07d}ms.png"
            with atomic_open(path, "wb") as f:
                Image.fromarray(frame).save(f, format="PNG")
            files.append(str(path))
    if args.json:
        chosen = [{"time": t, "score": s, **({"file": files[i]} if files else {})} for i, (t, s) in enumerate(zip(times, scores))]
        print(json.dumps({"video": args.video, "text": text, "frames": chosen}, ensure_ascii=False))
    else:
        for i, (t, s) in enumerate(zip(times, scores)):
            print(f"{t:8.3f}s  score {s:8.4f}" + (f"  {files[i]}" if files else ""))
    logger.info("chose %d frames of %s for %r", len(times), args.video, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
