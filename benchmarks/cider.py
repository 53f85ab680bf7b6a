"""``cider``: the project's CIDEr-D (NumPy, PTB tokenizer kept running) against pycocoevalcap's.

Two workloads:
- one SCST step: 64 videos x 5 candidates, each scored against its video's 20 references with
  document frequencies from the batch, tokenization included (the paper's code calls
  pycocoevalcap's Java PTB tokenizer and ``Cider`` at every step). The project's side twice:
  ``warm``, the reward object of a running SCST job that has met these references before (it
  tokenizes each reference once per run and the step's new candidates through its running
  tokenizer process; the target is on this one), and ``cold``, a fresh ``CiderDReward`` whose
  tokenizer process is already running but which has to tokenize every reference (a job's first
  epoch);
- a full MSR-VTT-size evaluation: 2,990 videos x 20 references, one candidate each.

Correctness, recorded under ``checks``: both scorers on the *same* Java-tokenized input agree to
1e-9 (mean and every per-video score), and the reward's tokens are pycocoevalcap's. Recorded under
the SCST group's ``info``: how the paper's swapped reward orientation differs from the standard
one on the step, with each candidate's paired reference (as the paper's defaults score).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from benchmarks.captions import CaptionSet, load_caption_set
from benchmarks.harness import Case, CaseResult, Context, Target
from lavis.metrics.cider import CiderD, CiderDReward
from lavis.metrics.ptb import PTBTokenizerProcess

logger = logging.getLogger(__name__)

SCST_VIDEOS = {"tiny": 8, "full": 64}
SCST_CANDIDATES = 5
EVAL_VIDEOS = {"tiny": 50, "full": 2990}
REFERENCES = 20
TOLERANCE = 1e-9
SCST_SPEEDUP = 50.0
PYCOCO = "pycocoevalcap (Java PTB + Cider)"
PROJECT_SCST = "lavis CiderDReward (warm)"
PROJECT_SCST_COLD = "lavis CiderDReward (cold)"
PROJECT_EVAL = "lavis PTB tokenizer process + CiderD"

Captions = dict[int, list[str]]


def pycoco_tokenize(captions: Captions) -> Captions:
    return PTBTokenizer().tokenize({k: [{"caption": c} for c in caps] for k, caps in captions.items()})


def pycoco_score(refs: Captions, cands: Captions) -> np.ndarray:
    """What the paper's SCST and COCOEvalCap do: tokenize both sides (two JVMs), then ``Cider``."""
    gts, res = pycoco_tokenize(refs), pycoco_tokenize(cands)
    return np.asarray(Cider().compute_score(gts, res)[1])


def project_eval(refs: Captions, cands: Captions, tokenizer: PTBTokenizerProcess) -> np.ndarray:
    gts = dict(zip(refs, CiderDReward(tokenizer=tokenizer).tokenize_references(list(refs.values()))))
    res = {k: [t] for k, t in zip(cands, tokenizer.tokenize([c[0] for c in cands.values()]))}
    return CiderD().compute_score(gts, res)[1]


def scst_batch(captions: CaptionSet) -> tuple[list[str], list[list[str]]]:
    """Every candidate with its video's references, candidates of a video side by side."""
    candidates, references = [], []
    for vid, cands in captions.candidates.items():
        for cand in cands:
            candidates.append(cand)
            references.append(captions.references[vid])
    return candidates, references


def as_ids(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[Captions, Captions]:
    return ({i: list(r) for i, r in enumerate(references)}, {i: [c] for i, c in enumerate(candidates)})


def equality_checks(refs: Captions, cands: Captions, tokenizer: PTBTokenizerProcess) -> dict[str, float | bool | int]:
    """pycocoevalcap ``Cider`` vs ``CiderD`` on one tokenization; the reward's tokens vs pycocoevalcap's."""
    gts, res = pycoco_tokenize(refs), pycoco_tokenize(cands)
    ref_mean, ref_scores = Cider().compute_score(gts, res)
    our_mean, our_scores = CiderD().compute_score(gts, res)
    diff = max(abs(ref_mean - our_mean), float(np.max(np.abs(np.asarray(ref_scores) - our_scores))))
    ours = CiderDReward(tokenizer=tokenizer).tokenize_references(list(refs.values()))
    mismatched = sum(t != gts[k] for k, t in zip(refs, ours))
    mismatched += sum([t] != res[k] for k, t in zip(cands, tokenizer.tokenize([c[0] for c in cands.values()])))
    return {"cider_max_abs_diff": diff, "cider_identical": diff < TOLERANCE, "ptb_mismatched_sets": int(mismatched)}


def orientation_difference(candidates: Sequence[str], paired: Sequence[str], k: int,
                           tokenizer: PTBTokenizerProcess) -> dict[str, float]:
    """Standard vs the paper's swapped reward on one step with paired references (batch df)."""
    refs = [[p] for p in paired]
    standard = CiderDReward(tokenizer=tokenizer)(candidates, refs)
    paper = CiderDReward(orientation="paper", tokenizer=tokenizer)(candidates, refs)
    adv_s = (standard.reshape(-1, k) - standard.reshape(-1, k).mean(1, keepdims=True)).ravel()
    adv_p = (paper.reshape(-1, k) - paper.reshape(-1, k).mean(1, keepdims=True)).ravel()
    best_s, best_p = standard.reshape(-1, k).argmax(1), paper.reshape(-1, k).argmax(1)
    return {"standard_mean": float(standard.mean()), "paper_mean": float(paper.mean()),
            "rewards_differing": int(np.sum(np.abs(standard - paper) > 1e-9)),
            "max_abs_reward_diff": float(np.max(np.abs(standard - paper))),
            "max_abs_advantage_diff": float(np.max(np.abs(adv_s - adv_p))),
            "advantage_sign_flips": int(np.sum(np.sign(adv_s) * np.sign(adv_p) < 0)),
            "videos_with_other_best_candidate": int(np.sum(best_s != best_p))}


def run(ctx: Context) -> CaseResult:
    result = CaseResult()
    folder = ctx.folder("captions")

    tokenizer = PTBTokenizerProcess()  # one per job, started before its first step
    scst = load_caption_set(folder, SCST_VIDEOS[ctx.size], REFERENCES, SCST_CANDIDATES, seed=1)
    candidates, references = scst_batch(scst)
    refs, cands = as_ids(candidates, references)
    group = result.group("SCST step", PYCOCO, candidates=len(candidates), references_each=REFERENCES)
    _, base = ctx.time_variant(group, PYCOCO, lambda: pycoco_score(refs, cands), items=len(candidates))
    warm = CiderDReward(tokenizer=tokenizer)
    warm.tokenize_references(references)  # earlier steps met these references
    _, ours = ctx.time_variant(group, PROJECT_SCST, lambda: warm(candidates, references),
                               items=len(candidates))
    _, cold = ctx.time_variant(group, PROJECT_SCST_COLD,
                               lambda: CiderDReward(tokenizer=tokenizer)(candidates, references), items=len(candidates))
    group.info["max_abs_diff_end_to_end"] = float(max(np.max(np.abs(base - ours)), np.max(np.abs(base - cold))))
    group.info["orientation_paper_vs_standard"] = orientation_difference(
        candidates, [r[0] for r in references], SCST_CANDIDATES, tokenizer)
    result.checks.update({f"scst_{k}": v for k, v in equality_checks(refs, cands, tokenizer).items()})

    full = load_caption_set(folder, EVAL_VIDEOS[ctx.size], REFERENCES, 1, seed=0)
    refs = {i: full.references[v] for i, v in enumerate(full.references)}
    cands = {i: full.candidates[v] for i, v in enumerate(full.references)}
    group = result.group("full evaluation", PYCOCO, videos=len(refs), references_each=REFERENCES)
    _, base = ctx.time_variant(group, PYCOCO, lambda: pycoco_score(refs, cands), items=len(refs))
    _, ours = ctx.time_variant(group, PROJECT_EVAL, lambda: project_eval(refs, cands, tokenizer), items=len(refs))
    group.info.update(pycoco_cider=float(base.mean()), lavis_cider=float(ours.mean()),
                      max_abs_diff_end_to_end=float(np.max(np.abs(base - ours))))
    result.checks.update({f"eval_{k}": v for k, v in equality_checks(refs, cands, tokenizer).items()})
    tokenizer.close()
    result.checks["cider_identical"] = bool(result.checks["scst_cider_identical"] and result.checks["eval_cider_identical"])

    identical = result.checks["cider_identical"]
    if not identical:
        logger.error("CiderD differs from pycocoevalcap's Cider on the same tokens: %s", result.checks)
    speedup = result.groups[0].ratio(PROJECT_SCST) or 0.0
    result.target = Target(identical and speedup >= SCST_SPEEDUP,
                           f"SCST step speed-up {speedup:.1f}x (goal {SCST_SPEEDUP:g}x); scores identical: {identical}")
    return result


CASE = Case(
    name="cider",
    description="CIDEr-D with tokenization: one SCST step (64 x 5 candidates x 20 refs) and a 2,990-video evaluation",
    baseline=PYCOCO,
    target=f">= {SCST_SPEEDUP:g}x faster per SCST step, scores identical (|diff| < {TOLERANCE:g}) on the same tokens",
    run=run,
)
