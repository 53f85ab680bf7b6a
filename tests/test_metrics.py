"""Caption metrics: exact agreement with pycocoevalcap, the fast CIDEr-D and the SCST reward."""

import random
from pathlib import Path

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from lavis.metrics.caption import score_captions
from lavis.metrics.cider import CiderD, CiderDReward
from lavis.metrics.ptb import JavaNotFoundError, JavaPTBTokenizer, PTBTokenizerProcess, require_helper, require_java
from tests.caption_corpus import corpus, real_text

WORDS = "a the man woman dog is are playing running red blue circle moves left right on in".split()


def pycoco_tokens(captions):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})


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
    tokens = JavaPTBTokenizer().tokenize({i: [c] for i, c in enumerate(corpus(400, seed=5))})
    lines = [caps[0] for caps in tokens.values()]
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
    gts = pycoco_tokens(dict(enumerate(per_candidate)))
    res = pycoco_tokens({i: [c] for i, c in enumerate(candidates)})
    assert np.allclose(got, Cider().compute_score(gts, res)[1], atol=1e-12)
    assert got[1] > got[0] and got[3] > got[2]


def test_the_paper_orientation_is_the_paper_codes_swapped_call():
    """blip2_t5.py: ``caps_gen, caps_gt = tokenize(caps_gt, caps_gen)`` then
    ``Cider().compute_score(caps_gt, caps_gen)``: the paired caption scored against the candidate."""
    lines = corpus(60, seed=8)
    rng = random.Random(1)
    paired = [rng.choice(lines) for _ in range(6)]
    generated = [rng.choice(lines) for _ in range(6 * 5)]
    caps_gt = [[c] for c in paired for _ in range(5)]
    tokenized_gt = pycoco_tokens(dict(enumerate(caps_gt)))
    tokenized_gen = pycoco_tokens({i: [c] for i, c in enumerate(generated)})
    caps_gen, caps_gt_tok = tokenized_gt, tokenized_gen  # the paper's swap
    expected = Cider().compute_score(caps_gt_tok, caps_gen)[1]
    paper, standard = CiderDReward(orientation="paper"), CiderDReward()
    assert np.allclose(paper(generated, caps_gt), expected, atol=1e-12)
    assert np.max(np.abs(standard(generated, caps_gt) - expected)) > 1e-3  # the orientation matters
    with pytest.raises(ValueError, match="one paired reference"):
        paper(generated[:1], [paired[:2]])


def test_reward_tokens_equal_pycocoevalcap_on_real_text():
    """Sentences of the installed packages' descriptions and licences, in SCST-sized batches:
    references, then candidates, as the reward tokenizes them, against pycocoevalcap's tokens."""
    lines = real_text()
    assert len(lines) >= 2000, "too little text found in site-packages to test on"
    expected = pycoco_tokens({i: [line] for i, line in enumerate(lines)})
    reward = CiderDReward()
    refs = reward.tokenize_references([lines[i : i + 20] for i in range(0, len(lines) // 2, 20)])
    got = [t for ref in refs for t in ref]
    got += [t for i in range(len(got), len(lines), 320) for t in reward.tokenizer.tokenize(lines[i : i + 320])]
    differing = [(lines[i], expected[i][0], got[i]) for i in range(len(lines)) if got[i] != expected[i][0]]
    assert not differing, f"{len(differing)} of {len(lines)} differ, e.g. {differing[:5]}"


def test_scst_rewards_equal_pycocoevalcap_on_real_text():
    """One SCST step (64 videos x 5 candidates x 20 references) of real sentences, end to end."""
    lines = real_text()[::7]
    rng = random.Random(4)
    refs = [rng.sample(lines, 20) for _ in range(64)]
    candidates = [rng.choice(lines) for _ in range(64 * 5)]
    per_candidate = [r for r in refs for _ in range(5)]
    expected = Cider().compute_score(pycoco_tokens(dict(enumerate(per_candidate))),
                                     pycoco_tokens({i: [c] for i, c in enumerate(candidates)}))[1]
    got = CiderDReward()(candidates, per_candidate)
    assert np.max(np.abs(got - expected)) < 1e-9, f"{np.sum(np.abs(got - expected) > 1e-9)} of 320 rewards differ"


def test_reward_tokenizes_each_reference_once_per_run_and_context():
    reward = CiderDReward()
    sent = []
    tokenize_documents = reward.tokenizer.tokenize_documents
    reward.tokenizer.tokenize_documents = lambda docs: sent.append([list(d) for d in docs]) or tokenize_documents(docs)
    candidates = ["a man", "a man is singing", "a dog", "the dog runs"]
    refs = [["a man sings", "someone is singing"]] * 2 + [["a dog runs", "the dog is running"]] * 2
    reward(candidates, refs)
    later = [refs[0], refs[0], ["a dog runs", "a new reference"], ["a dog runs", "a new reference"]]
    second = reward(candidates, later)
    reward(candidates, later)
    first_refs = [["a man sings", "someone is singing"], ["someone is singing", "a man sings"],
                  ["someone is singing", "a dog runs"], ["a dog runs", "the dog is running"],
                  ["the dog is running", "a dog runs"], ["the dog is running"]]  # each with the lines after it
    new_refs = [["a dog runs", "a new reference"], ["a new reference", "a dog runs"], ["a new reference"]]
    assert sent == [[candidates], first_refs, [candidates], new_refs, [candidates], []]
    assert np.array_equal(second, CiderDReward()(candidates, later)) and second[1] > second[0]


def test_a_references_tokens_follow_the_line_after_it_as_in_pycocoevalcap():
    """The jar splits the period off "Travis E." when the next line starts with a capital, so
    one reference has two tokenizations; a run must not reuse the first for the second."""
    reward = CiderDReward()
    candidates = ["author travis e.", "author travis e"] * 2
    for refs in ([["Author: Travis E."], ["the end"]] * 2, [["Author: Travis E."], ["The end"]] * 2):
        expected = Cider().compute_score(pycoco_tokens(dict(enumerate(refs))),
                                         pycoco_tokens({i: [c] for i, c in enumerate(candidates)}))[1]
        assert np.array_equal(reward(candidates, refs), expected)
    assert pycoco_tokens({0: ["Author: Travis E.", "The end"]})[0][0] == "author travis e"
    assert pycoco_tokens({0: ["Author: Travis E.", "the end"]})[0][0] == "author travis e."


def test_the_tokenizer_process_reports_a_failed_call_and_starts_again():
    tokenizer = PTBTokenizerProcess(timeout=1e-4)  # killed before it can answer
    with pytest.raises(RuntimeError, match=r"PTB tokenizer process failed or took longer than 0.0001 s"):
        tokenizer.tokenize(["a dog"] * 1000)
    tokenizer.timeout = 60.0
    assert tokenizer.tokenize(["A man's guitar.", "", "c++ @user 10:30"]) == ["a man 's guitar", "", "c++ @user 10:30"]
    tokenizer.close()


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
    with pytest.raises(JavaNotFoundError, match="needs Java"):
        CiderDReward()(["a man"], [["a man"]])


def test_missing_javac_is_a_clear_error(monkeypatch, tmp_path):
    java = Path(require_java()).resolve()
    (tmp_path / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("LAVIS_CACHE_ROOT", str(tmp_path / "cache"))
    with pytest.raises(JavaNotFoundError, match="compiled once with javac.*install a JDK"):
        require_helper()


# Every line boundary of str.splitlines: the jar starts a new line at the first five (and at \n).
LINE_BREAKS = ["\r", "\r\n", "\x0b", "\x0c", "\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e"]


def test_line_breaks_inside_captions_tokenize_as_one_line():
    """A line break the jar splits on must not shift later captions onto other videos."""
    captions = {i: [f"A man is playing{brk}a guitar.", "the dog's ball"] for i, brk in enumerate(LINE_BREAKS)}
    one_line = {i: [c.replace(LINE_BREAKS[i], " ") for c in caps] for i, caps in captions.items()}
    expected = pycoco_tokens(one_line)
    assert JavaPTBTokenizer().tokenize(captions) == expected
    tokens = PTBTokenizerProcess().tokenize([c for caps in captions.values() for c in caps])
    assert tokens == [c for caps in expected.values() for c in caps]


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
