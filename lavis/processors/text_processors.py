"""Text processors: caption cleaning as LAVIS's ``blip_caption`` does it, plus a prompt."""

from __future__ import annotations

import re

from lavis.common.registry import registry

_PUNCTUATION = re.compile(r"([.!\"()*#:;~])")
_SPACES = re.compile(r"\s{2,}")


@registry.register_processor("caption")
class CaptionProcessor:
    """Lower-case, strip punctuation, keep at most ``max_words`` words, prepend ``prompt``."""

    def __init__(self, prompt: str = "", max_words: int = 50) -> None:
        self.prompt, self.max_words = prompt, max_words

    def __call__(self, caption: str) -> str:
        text = _PUNCTUATION.sub(" ", caption.lower())
        text = _SPACES.sub(" ", text).rstrip("\n").strip(" ")
        words = text.split(" ")
        if len(words) > self.max_words:
            text = " ".join(words[: self.max_words])
        return self.prompt + text
