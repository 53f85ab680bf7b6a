"""Turn train.py's checkpoint into a self-contained captioner folder (what ``--checkpoint`` and
``model.finetuned`` load): ``python -m lavis.inference.export --checkpoint JOB/checkpoint_best.pth --out DIR``."""

from __future__ import annotations

import argparse

from lavis.common.log import setup_logging
from lavis.inference.loading import export_captioner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint_*.pth with the job's config.yaml beside it")
    parser.add_argument("--out", required=True, help="folder to write (model.safetensors, config.yaml, tokenizer, ...)")
    args = parser.parse_args()
    setup_logging()
    export_captioner(args.checkpoint, args.out)


if __name__ == "__main__":
    main()
