"""Caption metrics: exact agreement with pycocoevalcap, and the fast CIDEr-D / Python PTB twins."""

import random

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from lavis.metrics.caption import score_captions
from lavis.metrics.cider import CiderD, CiderDReward
from lavis.metrics.ptb import JavaNotFoundError, JavaPTBTokenizer, PythonPTBTokenizer, require_java
from tests.caption_corpus import corpus

WORDS = "a the man woman dog is are playing running red blue circle moves left right on in".split()


def random_sets(seed, n=200):
    rng = random.Random(seed)

    def sentence():
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 14)))

    gts = {i: [sentence() for _ in range(rng.randint(1, 20))] for i in range(n)}
    res = {i: [sentence()] for i in range(n)}
    res[0], res[1], res[2] = [""], ["a a a a a a a a a"], [gts[2][0]]  # empty, repeated, exact copy
    return gts, res


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cider_d_equals_pycocoevalcap_on_random_sets(seed):
    gts, res = random_sets(seed)
    ref_score, ref_scores = Cider().compute_score(gts, res)
    score, scores = CiderD().compute_score(gts, res)
    assert abs(score - ref_score) < 1e-9 and np.max(np.abs(scores - ref_scores)) < 1e-9


def test_cider_d_equals_pycocoevalcap_on_realistic_captions():
    lines = [PythonPTBTokenizer.tokenize_caption(c) for c in corpus(400, seed=5)]
    rng = random.Random(3)
    gts = {f"video{i}": rng.sample(lines, 20) for i in range(100)}
    res = {k: [rng.choice(lines)] for k in gts}
    ref_score, ref_scores = Cider().compute_score(gts, res)
    score, scores = CiderD().compute_score(gts, res)
    assert abs(score - ref_score) < 1e-9 and np.max(np.abs(scores - ref_scores)) < 1e-9


def test_fixed_document_frequencies():
    gts, res = random_sets(4, n=50)
    ids = list(gts)
    batch = CiderD().compute_score(gts, res)[1]
    fixed = CiderD.from_corpus([gts[i] for i in ids])
    assert np.max(np.abs(fixed.compute_score(gts, res)[1] - batch)) < 1e-12  # same corpus, same scores
    half = CiderD.from_corpus([gts[i] for i in ids[:25]])
    assert np.max(np.abs(half.compute_score(gts, res)[1] - batch)) > 1e-3  # other frequencies, other scores
    with pytest.raises(ValueError, match="exactly one candidate"):
        CiderD().compute_score({1: ["a"]}, {1: ["a", "b"]})


@pytest.mark.parametrize("fixed", [False, True], ids=["batch_df", "corpus_df"])
def test_a_scorer_reused_across_calls_scores_as_a_fresh_one(fixed):
    """Sentences and n-gram ids are cached between calls (SCST calls every step); later calls
    bring new n-grams and shared reference sets and must not be affected by earlier ones."""
    first, second = random_sets(5, n=60), random_sets(6, n=60)
    corpus_sets = [first[0][i] for i in first[0]]

    def make():
        return CiderD.from_corpus(corpus_sets) if fixed else CiderD()

    reused = make()
    reused.compute_score(*first)
    gts, res = second
    gts = {i: gts[i - i % 3] for i in gts}  # three candidates share each reference set
    assert np.max(np.abs(reused.compute_score(gts, res)[1] - make().compute_score(gts, res)[1])) < 1e-12
    if not fixed:
        assert np.max(np.abs(reused.compute_score(gts, res)[1] - Cider().compute_score(gts, res)[1])) < 1e-9


def test_reward_api_matches_a_pycocoevalcap_call():
    refs = [["A man is singing.", "Someone sings a song!"], ["A dog runs in the park."]]
    candidates = ["a man sings", "a man is singing", "a dog", "a dog runs in the park"]
    per_candidate = [refs[0], refs[0], refs[1], refs[1]]
    got = CiderDReward()(candidates, per_candidate)
    tok = PythonPTBTokenizer()
    gts = tok.tokenize({i: r for i, r in enumerate(per_candidate)})
    res = tok.tokenize({i: [c] for i, c in enumerate(candidates)})
    assert np.allclose(got, Cider().compute_score(gts, res)[1], atol=1e-12)
    assert got[1] > got[0] and got[3] > got[2]


def test_python_ptb_tokenizer_matches_the_java_one():
    lines = corpus(600, seed=11)
    captions = {i: [line] for i, line in enumerate(lines)}
    java = JavaPTBTokenizer().tokenize(captions)
    python = PythonPTBTokenizer().tokenize(captions)
    differing = [(lines[i], java[i], python[i]) for i in captions if java[i] != python[i]]
    assert not differing, differing[:5]


def test_caption_metrics_equal_pycocoevalcap_run_by_hand():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    lines = corpus(100, seed=2)
    rng = random.Random(0)
    refs = {f"v{i}": rng.sample(lines, 5) for i in range(25)}
    preds = {k: rng.choice(lines) for k in refs}
    ours = score_captions(refs, preds)
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in preds.items()})
    expected = dict(zip([f"Bleu_{i}" for i in range(1, 5)], Bleu(4).compute_score(gts, res, verbose=0)[0]))
    expected.update(METEOR=Meteor().compute_score(gts, res)[0], ROUGE_L=Rouge().compute_score(gts, res)[0],
                    CIDEr=Cider().compute_score(gts, res)[0])
    assert ours == {k: float(v) for k, v in expected.items()}


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(JavaNotFoundError, match="needs Java"):
        require_java()
    with pytest.raises(JavaNotFoundError):
        score_captions({"v": ["a man"]}, {"v": "a man"})


# Every line boundary of str.splitlines: the jar starts a new line at the first five (and at \n).
LINE_BREAKS = ["\r", "\r\n", "\x0b", "\x0c", "\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e"]


def pycoco_tokens(captions):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})


def test_line_breaks_inside_captions_tokenize_as_one_line():
    """A line break the jar splits on must not shift later captions onto other videos."""
    captions = {i: [f"A man is playing{brk}a guitar.", "the dog's ball"] for i, brk in enumerate(LINE_BREAKS)}
    one_line = {i: [c.replace(LINE_BREAKS[i], " ") for c in caps] for i, caps in captions.items()}
    assert JavaPTBTokenizer().tokenize(captions) == pycoco_tokens(one_line)
    assert PythonPTBTokenizer().tokenize(captions) == pycoco_tokens(one_line)


def test_caption_metrics_with_line_breaks_equal_the_one_line_pipeline():
    from pycocoevalcap.bleu.bleu import Bleu

    refs = {f"v{i}": [f"a man is playing{brk}a guitar", "someone plays music"] for i, brk in enumerate(LINE_BREAKS)}
    refs["v_last"] = ["a dog runs in the park", "a dog is running"]
    preds = {k: "a man is playing a guitar" for k in refs} | {"v_last": "a dog runs"}
    ours = score_captions(refs, preds)
    flat = {k: [" ".join(c.splitlines()) for c in v] for k, v in refs.items()}
    gts, res = pycoco_tokens(flat), pycoco_tokens({k: [v] for k, v in preds.items()})
    assert ours["CIDEr"] == float(Cider().compute_score(gts, res)[0])
    assert ours["Bleu_4"] == float(Bleu(4).compute_score(gts, res, verbose=0)[0][3])


def test_tokenizer_output_with_the_wrong_number_of_lines_is_an_error():
    from lavis.metrics.ptb import output_lines

    assert output_lines("a man\n\nthe dog", 3) == ["a man", "", "the dog"]
    with pytest.raises(RuntimeError, match="returned 4 lines for 3 captions"):
        output_lines("a man\nis\n\nthe dog", 3)
