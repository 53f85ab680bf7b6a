"""CIDEr-D without Java or per-call set-up, equal to pycocoevalcap's ``Cider``.

``CiderD().compute_score(gts, res)`` has pycocoevalcap's interface and arithmetic (n = 1..4,
sigma = 6, clipped tf-idf cosine, Gaussian length penalty, x10), including its quirks: the
"length" in the penalty counts bigrams, and document frequencies come from the references
being scored. ``CiderD(document_frequency=...)`` instead fixes them once from a corpus (the
M2-Transformer recipe for SCST). ``CiderDReward`` scores many candidates against their videos'
references in one call, for SCST rewards, caching reference vectors between calls.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np

from lavis.metrics.ptb import PythonPTBTokenizer

Ngram = tuple[str, ...]
CACHE_LIMIT = 500_000  # sentences kept per cache before it is cleared
K = TypeVar("K")
V = TypeVar("V")


def cached(cache: dict[K, V], key: K, compute: Callable[[K], V]) -> V:
    """``cache[key]``, computed on first use; a cache past ``CACHE_LIMIT`` entries starts over."""
    found = cache.get(key)
    if found is None:
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        found = cache[key] = compute(key)
    return found


def ngram_counts(sentence: str, n: int = 4) -> Counter[Ngram]:
    words = sentence.split()
    return Counter(tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def document_frequency(
    reference_sets: Iterable[Sequence[str]], n: int = 4, counts: Callable[[str], Counter[Ngram]] | None = None
) -> dict[Ngram, float]:
    """For every n-gram, in how many reference sets (videos) it occurs. Identical sets (the k
    candidates of one video share theirs) are expanded once and counted k times."""
    counts = counts or (lambda s: ngram_counts(s, n))
    df: dict[Ngram, float] = defaultdict(float)
    for refs, times in Counter(tuple(r) for r in reference_sets).items():
        for ngram in {g for ref in refs for g in counts(ref)}:
            df[ngram] += float(times)
    return df


class _Vector:
    """tf-idf weights per n-gram order, their norms, and pycocoevalcap's "length" (bigrams)."""

    __slots__ = ("weights", "norms", "length")

    def __init__(self, counts: Counter[Ngram], df: dict[Ngram, float], ref_len: float, n: int) -> None:
        self.weights: list[dict[Ngram, float]] = [{} for _ in range(n)]
        squares = [0.0] * n
        self.length = 0
        for ngram, tf in counts.items():
            order = len(ngram) - 1
            w = float(tf) * (ref_len - np.log(max(1.0, df.get(ngram, 0.0))))
            self.weights[order][ngram] = w
            squares[order] += pow(w, 2)
            if order == 1:
                self.length += tf
        self.norms = [np.sqrt(s) for s in squares]


def _similarity(hyp: _Vector, ref: _Vector, n: int, sigma: float) -> float:
    """Sum over n-gram orders of the clipped, length-penalised cosine (before averaging)."""
    delta = float(hyp.length - ref.length)
    penalty = np.e ** (-(delta**2) / (2 * sigma**2))
    total = 0.0
    for k in range(n):
        ref_w = ref.weights[k]
        val = 0.0
        for ngram, w in hyp.weights[k].items():
            r = ref_w.get(ngram, 0.0)
            val += min(w, r) * r
        if hyp.norms[k] != 0 and ref.norms[k] != 0:
            val /= hyp.norms[k] * ref.norms[k]
        total += val * penalty
    return total


class CiderD:
    """pycocoevalcap's ``Cider`` (which is CIDEr-D), optionally with fixed document frequencies."""

    def __init__(
        self,
        n: int = 4,
        sigma: float = 6.0,
        document_frequency: dict[Ngram, float] | None = None,
        num_documents: int | None = None,
    ) -> None:
        if (document_frequency is None) != (num_documents is None):
            raise ValueError("give document_frequency and num_documents together (see CiderD.from_corpus)")
        self.n, self.sigma = n, sigma
        self.df = document_frequency
        self.ref_len = None if num_documents is None else math.log(float(num_documents))
        self._fixed_cache: dict[str, _Vector] = {}  # with fixed frequencies, vectors never change
        self._counts: dict[str, Counter[Ngram]] = {}  # n-gram counts of sentences seen before

    def _ngram_counts(self, sentence: str) -> Counter[Ngram]:
        return cached(self._counts, sentence, lambda s: ngram_counts(s, self.n))

    @classmethod
    def from_corpus(cls, reference_sets: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0) -> CiderD:
        """Document frequencies fixed once from e.g. all training references (tokenized)."""
        return cls(n, sigma, document_frequency(reference_sets, n), len(reference_sets))

    def compute_score(self, gts: dict, res: dict) -> tuple[float, np.ndarray]:
        """``gts``: id -> tokenized references; ``res``: id -> [one tokenized candidate]."""
        if gts.keys() != res.keys():
            raise ValueError("gts and res must have the same ids")
        for key in res:
            if len(res[key]) != 1 or not gts[key]:
                raise ValueError(f"id {key!r}: need exactly one candidate and at least one reference")
        ids = list(gts)
        scores = self.score_pairs([res[i][0] for i in ids], [gts[i] for i in ids])
        return float(np.mean(scores)), scores

    def score_pairs(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
        """CIDEr-D of each candidate against its own references (one pycocoevalcap call)."""
        if self.df is None:
            df = document_frequency(references, self.n, self._ngram_counts)
            ref_len, cache = math.log(float(len(references))), {}
        else:
            df, ref_len, cache = self.df, self.ref_len, self._fixed_cache

        def vector(sentence: str) -> _Vector:
            return cached(cache, sentence, lambda s: _Vector(self._ngram_counts(s), df, ref_len, self.n))

        out = np.empty(len(candidates))
        for i, (cand, refs) in enumerate(zip(candidates, references)):
            hyp = vector(cand)
            total = sum(_similarity(hyp, vector(r), self.n, self.sigma) for r in refs)
            out[i] = total / self.n / len(refs) * 10.0
        return out


class CiderDReward:
    """SCST rewards: raw candidates and raw references in, CIDEr-D per candidate out.

    Tokenizes with the Python PTB tokenizer. ``corpus`` (all training reference sets) fixes the
    document frequencies; without it they come from the batch, as the paper's code did.
    """

    def __init__(self, corpus: Sequence[Sequence[str]] | None = None, n: int = 4, sigma: float = 6.0) -> None:
        self._tokens: dict[str, str] = {}  # references recur every epoch: tokenize each once
        tokenized = None if corpus is None else [[self.tokenize(r) for r in refs] for refs in corpus]
        self.cider = CiderD(n, sigma) if tokenized is None else CiderD.from_corpus(tokenized, n, sigma)

    def tokenize(self, caption: str) -> str:
        return cached(self._tokens, caption, PythonPTBTokenizer.tokenize_caption)

    def __call__(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
        return self.cider.score_pairs(
            [self.tokenize(c) for c in candidates], [[self.tokenize(r) for r in refs] for refs in references]
        )
