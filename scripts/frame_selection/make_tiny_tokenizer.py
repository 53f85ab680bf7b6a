"""Build the byte-level BPE tokenizer of the tiny CLIP frame selector (reproducible; committed).

Byte-level, so any UTF-8 text (Vietnamese questions included) tokenizes without unknown tokens;
the merges are learnt from synthetic frame-selection questions and choices. Special tokens and
their use follow CLIP: ``<|startoftext|> text <|endoftext|>``, padded with ``<|endoftext|>``
(CLIP's text model pools at the first ``<|endoftext|>``). Run:
    python scripts/frame_selection/make_tiny_tokenizer.py --out lavis/projects/clip_frame_selector/tokenizer
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lavis.datasets.synthetic.qa import make_question  # noqa: E402
from lavis.datasets.synthetic.scenes import sample_scene  # noqa: E402

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
logger = logging.getLogger("make_tiny_tokenizer")


def corpus(num_scenes: int, seed: int) -> list[str]:
    texts = []
    for i, rng in enumerate(np.random.default_rng(seed).spawn(num_scenes)):
        question = make_question(sample_scene(rng, f"q{i}", 30, 10, event=True), rng, "v.mp4")
        texts.append(" ".join([question["question"], *question["choices"]]))
    return texts


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("lavis/projects/clip_frame_selector/tokenizer"))
    parser.add_argument("--scenes", type=int, default=3000)
    parser.add_argument("--vocab_size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab_size, special_tokens=[BOS, EOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus(args.scenes, args.seed), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, tok.token_to_id(BOS)), (EOS, tok.token_to_id(EOS))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=EOS, unk_token=EOS, model_max_length=77
    )
    fast.save_pretrained(str(args.out))
    logger.info("wrote a %d-token byte-level BPE tokenizer to %s", len(fast), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
