"""CIDEr-D without Java or per-call set-up, equal to pycocoevalcap's ``Cider``.

``CiderD().compute_score(gts, res)`` has pycocoevalcap's interface and arithmetic (n = 1..4,
sigma = 6, clipped tf-idf cosine, Gaussian length penalty, x10), including its quirks: the
"length" in the penalty counts bigrams, and document frequencies come from the references
being scored. ``CiderD(document_frequency=...)`` instead fixes them once from a corpus (the
M2-Transformer recipe for SCST). ``CiderDReward`` tokenizes raw captions with pycocoevalcap's
PTB tokenizer and scores many candidates against their videos' references in one call, for SCST
rewards. Sentences are kept as n-gram ids between calls and a
call is scored with NumPy over all its (candidate, reference) pairs at once.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TypeVar

import numpy as np

from lavis.metrics.ptb import PTBTokenizerProcess, one_line

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


class _Sentence:
    """A tokenized sentence as n-gram ids with their counts: what does not depend on the
    document frequencies, so it is computed once per sentence."""

    __slots__ = ("ids", "tf", "order", "length")

    def __init__(self, counts: Counter[Ngram], vocabulary: dict[Ngram, int], ngrams: list[Ngram]) -> None:
        def id_of(ngram: Ngram) -> int:
            found = vocabulary.get(ngram)
            if found is None:
                found = vocabulary[ngram] = len(ngrams)
                ngrams.append(ngram)
            return found

        self.ids = np.fromiter((id_of(g) for g in counts), np.int64, len(counts))
        self.tf = np.fromiter(counts.values(), np.float64, len(counts))
        self.order = np.fromiter((len(g) - 1 for g in counts), np.int64, len(counts))
        self.length = int(self.tf[self.order == 1].sum())  # pycocoevalcap's "length": bigrams


class _Entries:
    """Sentences' n-grams end to end: ``owner[e]`` is the row (sentence slot) entry ``e`` belongs to."""

    def __init__(self, sentences: Sequence[_Sentence], rows: np.ndarray) -> None:
        sizes = [len(x.ids) for x in sentences]
        self.owner = np.repeat(rows, sizes)
        self.ids = np.concatenate([x.ids for x in sentences] or [np.zeros(0, np.int64)])
        self.tf = np.concatenate([x.tf for x in sentences] or [np.zeros(0)])
        self.order = np.concatenate([x.order for x in sentences] or [np.zeros(0, np.int64)])

    def weights(self, df: np.ndarray, ref_len: float) -> np.ndarray:
        return self.tf * (ref_len - np.log(np.maximum(1.0, df[self.ids])))

    def norms(self, weights: np.ndarray, rows: int, n: int) -> np.ndarray:
        return np.sqrt(np.bincount(self.owner * n + self.order, weights**2, minlength=rows * n)).reshape(rows, n)


def _expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])``, vectorised."""
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(ends[-1] if len(ends) else 0)


class CiderD:
    """pycocoevalcap's ``Cider`` (which is CIDEr-D), optionally with fixed document frequencies.

    Scores are computed with NumPy over all (candidate, reference) pairs of a call at once; they
    equal pycocoevalcap's to rounding (tested to 1e-9).
    """

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
        self._vocabulary: dict[Ngram, int] = {}  # n-gram -> id, and back:
        self._ngrams: list[Ngram] = []
        self._sentences: dict[str, _Sentence] = {}  # sentences seen before, as n-gram ids
        self._fixed_df = np.zeros(0)  # ``document_frequency`` by id, extended as ids appear

    def _sentence(self, text: str) -> _Sentence:
        if len(self._ngrams) > CACHE_LIMIT * 8:  # ids are only meaningful with their vocabulary
            self._vocabulary.clear()
            self._ngrams.clear()
            self._sentences.clear()
            self._fixed_df = np.zeros(0)
        return cached(self._sentences, text, lambda s: _Sentence(ngram_counts(s, self.n), self._vocabulary, self._ngrams))

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
        """CIDEr-D of each candidate against its own references (one pycocoevalcap call).

        Vectorised over the call: each distinct reference set's n-grams are keyed by (set, n-gram
        id), each candidate n-gram is looked up among its set's, and the clipped tf-idf products
        are summed per (candidate, reference, order) with ``bincount``.
        """
        if len(candidates) != len(references):
            raise ValueError(f"{len(candidates)} candidates but {len(references)} reference sets")
        if not candidates:
            return np.zeros(0)
        n = self.n
        set_ids: dict[tuple[str, ...], int] = {}
        set_of = np.fromiter((set_ids.setdefault(tuple(r), len(set_ids)) for r in references), np.int64, len(references))
        sets = list(set_ids)
        width = max(len(refs) for refs in sets)  # reference slots per set
        hyp_sentences = [self._sentence(c) for c in candidates]
        hyps = _Entries(hyp_sentences, np.arange(len(candidates)))
        ref_sentences = [self._sentence(r) for refs in sets for r in refs]
        slots = np.concatenate([k * width + np.arange(len(refs)) for k, refs in enumerate(sets)])
        refs = _Entries(ref_sentences, slots)
        stride = len(self._ngrams)
        keys, key_of_entry = np.unique(refs.owner // width * stride + refs.ids, return_inverse=True)
        if self.df is None:  # in how many candidates' reference sets each n-gram occurs
            times = np.bincount(set_of, minlength=len(sets)).astype(np.float64)
            df = np.bincount(keys % stride, times[keys // stride], minlength=stride)
            ref_len = math.log(float(len(references)))
        else:
            df, ref_len = self._fixed_document_frequency(), self.ref_len
        hyp_w, ref_w = hyps.weights(df, ref_len), refs.weights(df, ref_len)
        hyp_norms = hyps.norms(hyp_w, len(candidates), n)
        ref_norms = refs.norms(ref_w, len(sets) * width, n).reshape(len(sets), width, n)

        # Every (candidate n-gram, reference entry with that n-gram in the candidate's set) pair.
        wanted = set_of[hyps.owner] * stride + hyps.ids
        at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        hit = np.flatnonzero(keys[at] == wanted) if len(keys) else np.zeros(0, np.int64)
        by_key = np.argsort(key_of_entry, kind="stable")
        per_key = np.bincount(key_of_entry, minlength=len(keys))
        first = np.cumsum(per_key) - per_key
        hyp_e = np.repeat(hit, per_key[at[hit]])
        ref_e = by_key[_expand(first[at[hit]], per_key[at[hit]])]
        r = ref_w[ref_e]
        cand = hyps.owner[hyp_e]
        bucket = (cand * width + refs.owner[ref_e] % width) * n + hyps.order[hyp_e]
        values = np.bincount(bucket, np.minimum(hyp_w[hyp_e], r) * r, minlength=len(candidates) * width * n)
        values = values.reshape(len(candidates), width, n)

        norms = hyp_norms[:, None, :] * ref_norms[set_of]
        values = np.where(norms != 0, values / np.where(norms != 0, norms, 1.0), values)
        ref_length = np.zeros(len(sets) * width)
        ref_length[slots] = [x.length for x in ref_sentences]
        hyp_length = np.array([x.length for x in hyp_sentences], np.float64)
        delta = hyp_length[:, None] - ref_length.reshape(len(sets), width)[set_of]
        penalty = np.e ** (-(delta**2) / (2 * self.sigma**2))
        totals = (values * penalty[:, :, None]).sum(axis=(1, 2))
        return totals / n / np.array([len(r) for r in references], np.float64) * 10.0

    def _fixed_document_frequency(self) -> np.ndarray:
        """``document_frequency`` by n-gram id, extended as new n-grams get ids."""
        known, size = len(self._fixed_df), len(self._ngrams)
        if size > known:
            new = np.fromiter((self.df.get(g, 0.0) for g in self._ngrams[known:]), np.float64, size - known)
            self._fixed_df = np.concatenate([self._fixed_df, new])
        return self._fixed_df


def lines_after(lines: Sequence[str]) -> list[tuple[str, ...]]:
    """For each line, the lines after it up to and including the first non-blank one: as far as
    the PTB tokenizer looks ahead from a line's end."""
    result: list[tuple[str, ...]] = []
    end = len(lines)  # the first non-blank line at or after i + 1 (or the end)
    for i in range(len(lines) - 1, -1, -1):
        result.append(tuple(lines[i + 1 : end + 1]))
        if lines[i].strip():
            end = i
    return result[::-1]


class CiderDReward:
    """SCST rewards: raw candidates and raw references in, CIDEr-D per candidate out.

    Tokens are pycocoevalcap's, from one long-lived PTB tokenizer process: each reference once
    per run and context (they recur every epoch), the candidates of a call in one round trip.
    ``corpus`` (all training reference sets) fixes the document frequencies; without it they come
    from the call, as in the paper's code. ``orientation="paper"`` scores as the paper's code
    literally does (``blip2_t5.py`` swaps the two tokenized sides before ``Cider``): the paired
    reference caption as the candidate, against the generated caption as its only reference.
    """

    def __init__(
        self,
        corpus: Sequence[Sequence[str]] | None = None,
        n: int = 4,
        sigma: float = 6.0,
        orientation: Literal["standard", "paper"] = "standard",
        tokenizer: PTBTokenizerProcess | None = None,
    ) -> None:
        if orientation not in ("standard", "paper"):
            raise ValueError(f"orientation must be 'standard' or 'paper', not {orientation!r}")
        self.orientation = orientation
        self.tokenizer = tokenizer or PTBTokenizerProcess()
        self._references: dict[tuple[str, tuple[str, ...]], str] = {}  # (reference, lines after) -> tokens
        tokenized = None if corpus is None else self.tokenize_references(corpus)
        self.cider = CiderD(n, sigma) if tokenized is None else CiderD.from_corpus(tokenized, n, sigma)

    def tokenize_references(self, reference_sets: Sequence[Sequence[str]]) -> list[list[str]]:
        """Tokens of each set, as one pycocoevalcap call over these sets in this order gives them.

        The jar looks past a line's end (``"Travis E."`` loses its period when the next line
        starts with a capital), so a reference is tokenized, and kept for the run, together with
        the lines after it up to the first non-blank one; only references not met before in
        that context are sent, in one round trip.
        """
        lines = [one_line(r) for refs in reference_sets for r in refs]
        keys = list(zip(lines, lines_after(lines)))
        new = list(dict.fromkeys(key for key in keys if key not in self._references))
        if len(self._references) + len(new) > CACHE_LIMIT:
            self._references.clear()
            new = list(dict.fromkeys(keys))
        documents = self.tokenizer.tokenize_documents([[line, *after] for line, after in new])
        self._references.update((key, doc[0]) for key, doc in zip(new, documents))
        tokens = iter([self._references[key] for key in keys])
        return [[next(tokens) for _ in refs] for refs in reference_sets]

    def __call__(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
        generated, reference_tokens = self.tokenizer.tokenize(candidates), self.tokenize_references(references)
        if self.orientation == "standard":
            return self.cider.score_pairs(generated, reference_tokens)
        if any(len(refs) != 1 for refs in reference_tokens):
            raise ValueError("the paper's orientation scores one paired reference per candidate")
        return self.cider.score_pairs([refs[0] for refs in reference_tokens], [[g] for g in generated])
