"""Build the word-level tokenizer of the tiny ``shapes`` captioner (reproducible; committed).

The vocabulary is every word the synthetic generator can write, collected by sampling many
scenes and their captions (no videos are rendered). Run:
    python scripts/make_shapes_tokenizer.py --out lavis/projects/shapes/tokenizer
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lavis.datasets.synthetic.captions import make_captions  # noqa: E402
from lavis.datasets.synthetic.scenes import sample_scene  # noqa: E402

SPECIALS = ["<pad>", "<unk>", "</s>", "<s>"]  # OPT's convention: "</s>" is both BOS and EOS
PROMPT_WORDS = ["a", "video", "of"]


def vocabulary(num_scenes: int, seed: int) -> list[str]:
    words: set[str] = set(PROMPT_WORDS)
    for i, rng in enumerate(np.random.default_rng(seed).spawn(num_scenes)):
        scene = sample_scene(rng, f"v{i}", 30, 10)
        for caption in make_captions(scene, rng):
            words.update(re.findall(r"\w+|[^\w\s]", caption.lower()))
    return sorted(words)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("lavis/projects/shapes/tokenizer"))
    parser.add_argument("--scenes", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    vocab = {tok: i for i, tok in enumerate(SPECIALS + vocabulary(args.scenes, args.seed))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", special_tokens=[("</s>", vocab["</s>"])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.save_pretrained(args.out)
    logging.info("wrote a %d-word tokenizer to %s", len(vocab), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
