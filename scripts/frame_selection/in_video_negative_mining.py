"""Mine in-video negatives for a frame selector (see ``lavis/datasets/frame_mining.py``).

    python scripts/frame_selection/in_video_negative_mining.py \\
        --input_folder data/shapes/qa --output_folder output/mining [--embedder dinov2 --embedder_path DIR]

Exit status: 0 when every sample was mined, 1 when some failed (listed in the manifest's
``errors``; a rerun retries them), 2 on usage or configuration errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lavis.datasets.frame_mining import mine_negatives  # noqa: E402

logger = logging.getLogger("in_video_negative_mining")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input_folder", required=True, help="folder of the QA JSON; video_paths are relative to it")
    parser.add_argument("--output_folder", required=True, help="frames, per-sample records and manifest.json")
    parser.add_argument("--json_path", help="the QA file (default: the one *.json inside --input_folder)")
    parser.add_argument("--embedder", choices=("pixels", "dinov2", "clip"), default="pixels",
                        help="image embedder for the similarity test (pixels needs no weights)")
    parser.add_argument("--embedder_path", help="local model folder for dinov2 / clip")
    parser.add_argument("--segments", type=int, default=8, help="equal time segments, at most one negative each")
    parser.add_argument("--threshold", type=float, default=0.95, help="a negative's cosine similarity to every "
                        "positive must be below this")
    parser.add_argument("--min_gap", type=float, default=1.0, help="seconds between a negative and every positive")
    parser.add_argument("--max_tries", type=int, default=3, help="candidates tested per segment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frame_size", type=int, help="resize frames to this square size (default: as decoded)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    embedder = {"name": args.embedder}
    if args.embedder_path:
        if args.embedder == "pixels":
            parser.error("--embedder_path is for --embedder dinov2 or clip (pixels needs no weights)")
        embedder["path"] = args.embedder_path
    try:
        summary = mine_negatives(
            args.input_folder, args.output_folder, json_path=args.json_path, embedder=embedder,
            segments=args.segments, threshold=args.threshold, min_gap=args.min_gap,
            max_tries=args.max_tries, seed=args.seed, frame_size=args.frame_size,
        )
    except (ValueError, OSError, ImportError) as err:  # configuration: no traceback, just the reason
        logger.error("%s", err)
        return 2
    if summary["errors"]:
        logger.error("%d of %d samples failed (see 'errors' in %s); rerun to retry them",
                     summary["errors"], summary["samples"], summary["manifest"])
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
