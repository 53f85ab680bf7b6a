"""Text for tokenizer and metric tests: MSR-VTT-like captions with the punctuation, contractions,
numbers and casing real annotators produce, plus random variants; and real English found on the
machine."""

from __future__ import annotations

import random
import re
import sysconfig
from pathlib import Path

BASE = [
    "A man is playing a guitar.",
    "a woman is slicing an onion",
    "Two men are talking about the U.S. economy on a news show.",
    "A cartoon character's dog isn't happy; it's barking loudly!",
    "someone is cooking pasta in a black-and-white kitchen",
    "A girl sings \"let it go\" on stage (live).",
    "people are dancing at a party -- it looks fun...",
    "a chef explains how to make a 3-layer cake at 3.5 p.m.",
    "Mr. Smith talks about his $5,000 car & 50% discount",
    "the players can't stop the ball, can they?",
    "a video game character runs through a forest/jungle",
    "kids are playing soccer in the park: one kicks the ball",
    "they're gonna win the race, aren't they?",
    "a woman's hair is being styled by a stylist",
    "the dogs' owner is walking them in the rain",
    "A person explains e.g. how to fix a car's engine",
    "a man in a red shirt is talking to the camera",
    "There is a man riding a horse",
    "Tom's cat jumps on the table, then off it.",
    "a band performs a song; the crowd cheers",
    "an animated clip shows a robot [dancing]",
    "a news reporter talks about the weather in N.Y.",
    "Two women discuss a recipe for 'apple pie'",
    "Someone is folding paper into an origami crane.",
    "a man shows how to use a 12-inch saw, step by step",
    "A MAN IS DRIVING A CAR VERY FAST!!!",
    "a woman walks down the runway wearing a dress - very elegant",
    "a boy is swimming in a pool ...",
    "a group of people are sitting around a table and eating",
    "it's a clip from a tv show where a man laughs",
]
WORDS = "man woman dog cat car ball kitchen stage song video people child game news".split()
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
PUNCT = [",", ".", "!", "?", ";", ":", " -", " --", "...", "'s", " (", ")", " \"", "\"", " '"]


def corpus(n_random: int = 300, seed: int = 0) -> list[str]:
    """The base sentences and ``n_random`` random variants of them."""
    rng = random.Random(seed)
    out = list(BASE)
    for _ in range(n_random):
        words = rng.choice(BASE).split()
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(words))
            choice = rng.random()
            if choice < 0.4:
                if words[i][-1].isalpha():  # annotators punctuate after words, not after punctuation
                    words[i] = words[i] + rng.choice(PUNCT)
            elif choice < 0.6:
                words[i] = words[i].capitalize()
            elif choice < 0.8:
                words.insert(i, rng.choice(WORDS))
            else:
                words[i] = str(rng.choice([2, 10, 1999, 3.5, "1,000"]))
        out.append(" ".join(words))
    return out


def real_text(limit: int = 20_000) -> list[str]:
    """Distinct sentences of real English that no fixture was tuned to: the package descriptions
    and licence files of the Python packages installed on this machine (prose, code, numbers,
    currency, versions, URLs, unicode), one line each, in a fixed order."""
    root = Path(sysconfig.get_paths()["purelib"])
    files = sorted([*root.glob("*.dist-info/METADATA"), *root.glob("*.dist-info/LICEN[CS]E*"),
                    *root.glob("*.dist-info/licenses/**/*")])
    sentences: set[str] = set()
    for path in files:
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                sentences.update(s for s in SENTENCE_END.split(line.strip()) if 0 < len(s) <= 300)
    return sorted(sentences)[:limit]
