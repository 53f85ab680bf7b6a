"""PTB tokenization of captions, as pycocoevalcap does it, twice over.

``JavaPTBTokenizer`` runs the same Stanford CoreNLP 3.4.1 jar with the same options and the same
punctuation removal as ``pycocoevalcap.tokenizer.ptbtokenizer.PTBTokenizer`` (so metrics match
it exactly), but writes its temporary file outside site-packages and gives up after a timeout.
``PythonPTBTokenizer`` reproduces that output for caption text in pure Python, without starting
a JVM: fast enough to tokenize SCST rewards at every training step.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# pycocoevalcap removes these tokens after tokenizing. With -lowerCase the jar writes brackets
# as "-lrb-" etc., which this (upper-case) list does not catch: they stay, in both tokenizers.
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                          ".", "?", "!", ",", ":", "-", "--", "...", ";"])
Captions = dict[object, list[str]]
# Every line boundary of ``str.splitlines``. The jar starts a new output line at \r, \x0b, \x0c,
# U+2028 and U+2029 as well as \n, so a caption holding one would shift every later caption onto
# the wrong video; it writes U+0085 as "..." and drops \x1c-\x1e. All become spaces, which makes a
# caption tokenize exactly as pycocoevalcap tokenizes it once it is written on one line.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def one_line(caption: str) -> str:
    """``caption`` with each line break replaced by a space: what the tokenizer must receive."""
    return _LINE_BREAKS.sub(" ", caption)


def output_lines(output: str, expected: int) -> list[str]:
    """The tokenizer's output split into lines, one per caption sent, or a clear error."""
    lines = output.split("\n")
    if len(lines) != expected:
        raise RuntimeError(f"the PTB tokenizer returned {len(lines)} lines for {expected} captions: "
                           "a caption still holds a line break it splits on, so tokens and captions no longer match")
    return lines


class JavaNotFoundError(RuntimeError):
    """Caption metrics need a Java runtime (pycocoevalcap's tokenizer and METEOR are Java)."""


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(
            "caption evaluation needs Java (pycocoevalcap's PTB tokenizer and METEOR are Java "
            "programs): install a JRE, e.g. `apt-get install default-jre-headless`, and make sure "
            "`java` is on PATH"
        )
    return java


def _jar() -> Path:
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb

    return Path(ptb.__file__).with_name(ptb.STANFORD_CORENLP_3_4_1_JAR)


class JavaPTBTokenizer:
    """pycocoevalcap's tokenizer with a timeout: ``{id: [captions]} -> {id: [tokenized]}``."""

    def __init__(self, timeout: float = 300.0) -> None:
        self.timeout = timeout

    def tokenize(self, captions: Captions) -> Captions:
        require_java()
        keys = [k for k, caps in captions.items() for _ in caps]
        if not keys:
            return {k: [] for k in captions}
        text = "\n".join(one_line(c) for caps in captions.values() for c in caps)
        fd, path = tempfile.mkstemp(suffix=".txt")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode())
            cmd = ["java", "-cp", str(_jar()), "edu.stanford.nlp.process.PTBTokenizer",
                   "-preserveLines", "-lowerCase", path]
            try:
                out = subprocess.run(cmd, capture_output=True, timeout=self.timeout, check=True).stdout
            except subprocess.TimeoutExpired as err:
                raise RuntimeError(f"the PTB tokenizer took longer than {self.timeout:g} s") from err
        finally:
            os.unlink(path)
        result: Captions = {}
        for key, line in zip(keys, output_lines(out.decode(), len(keys))):
            result.setdefault(key, []).append(_drop_punctuation(line.rstrip().split(" ")))
        return result


def _drop_punctuation(tokens: list[str]) -> str:
    return " ".join(t for t in tokens if t not in PUNCTUATIONS)


# ---------------------------------------------------------------------- the Python twin
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr jr sr st mt vs etc inc ltd co corp prof gen col lt sgt capt rev gov sen rep no "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
_SPLIT_WORDS = {"cannot": ["can", "not"], "gonna": ["gon", "na"], "wanna": ["wan", "na"],
                "gotta": ["got", "ta"], "gimme": ["gim", "me"], "lemme": ["lem", "me"]}
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")
_TOKEN = re.compile(
    r"""
    (?P<dots>\.{2,})                                   # ellipsis
    | (?P<dashes>-{2,}|[\u2014\u2013])                 # -- and em/en dashes
    | (?P<repeated>!{2,}|\?{2,})                       # !!! stays one token
    | (?P<initials>(?:[^\W\d_]\.){2,}|\b[^\W\d_]\.(?!\.\w)) # u.s.  p.m.  e.g.  a.
    | (?P<abbrev>\b(?i:%s)\.)                          # mr.  etc.
    | (?P<word>[^\W_](?:[\w'&/]|[-.](?=\w)|,(?=\d{3}))*)  # words, 3-layer, 1,000, 3.5, and/or
    | (?P<dquote>")
    | (?P<squote>['`])
    | (?P<other>[^\s\w])
    """
    % "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True)),
    re.VERBOSE,
)
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}


class PythonPTBTokenizer:
    """Pure-Python equivalent of ``JavaPTBTokenizer`` for caption text (same interface)."""

    def tokenize(self, captions: Captions) -> Captions:
        return {k: [self.tokenize_caption(c) for c in caps] for k, caps in captions.items()}

    @staticmethod
    def tokenize_caption(caption: str) -> str:
        return _drop_punctuation(ptb_tokens(one_line(caption)))


def ptb_tokens(text: str) -> list[str]:
    """Lower-cased PTB tokens of one line, before punctuation removal."""
    text = "".join(ch for ch in text if ord(ch) <= 0xFFFF)  # the jar drops non-BMP characters
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        kind, value = match.lastgroup, match.group()
        opening = match.start() == 0 or text[match.start() - 1].isspace() or text[match.start() - 1] in "([{"
        if kind == "dots":
            tokens.append("...")
        elif kind == "dashes":
            tokens.append("--")
        elif kind == "word":
            tokens.extend(_word(value.lower()))
        elif kind == "dquote":
            tokens.append("``" if opening else "''")
        elif kind == "squote":
            tokens.append("`" if opening else "'")
        elif kind == "other":
            tokens.append(_BRACKETS.get(value, value))
        else:
            tokens.append(value.lower())
    return tokens


def _word(word: str) -> list[str]:
    trailing = []
    if word.endswith("'") and len(word) > 1:  # dogs' -> dogs '
        word, trailing = word[:-1], ["'"]
    if word in _SPLIT_WORDS:
        return _SPLIT_WORDS[word] + trailing
    match = _CLITIC.match(word)
    if match is None:
        return [word, *trailing]
    stem, clitic = match.groups()
    if clitic == "n't":
        if stem == "ca":  # can't -> ca n't
            return ["ca", "n't", *trailing]
        if stem.endswith("n"):  # the jar only splits n't after another letter: "xn't" -> xn ' t
            return [*_word(stem + "n"), "'", "t", *trailing]
    return [*_word(stem), clitic, *trailing]
