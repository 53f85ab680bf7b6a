"""``cider``: the project's CIDEr-D (pure Python, Python PTB tokenizer) against pycocoevalcap's.

Two workloads:
- one SCST step: 64 videos x 5 candidates, each scored against its video's 20 references with
  document frequencies from the batch, tokenization included (the paper's code calls
  pycocoevalcap's Java PTB tokenizer and ``Cider`` at every step). The project's side twice:
  ``warm``, the reward object of a running SCST job that has met these references before (it
  tokenizes each reference once per run; the target is on this one), and ``cold``, a fresh
  ``CiderDReward`` that tokenizes everything (a job's first epoch);
- a full MSR-VTT-size evaluation: 2,990 videos x 20 references, one candidate each.

Correctness, recorded under ``checks``: both scorers on the *same* Java-tokenized input agree to
1e-9 (mean and every per-video score), and whether the Python tokenizer gives the Java tokens.
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
from lavis.metrics.ptb import PythonPTBTokenizer

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
PROJECT_EVAL = "lavis Python PTB + CiderD"

Captions = dict[int, list[str]]


def pycoco_tokenize(captions: Captions) -> Captions:
    return PTBTokenizer().tokenize({k: [{"caption": c} for c in caps] for k, caps in captions.items()})


def pycoco_score(refs: Captions, cands: Captions) -> np.ndarray:
    """What the paper's SCST and COCOEvalCap do: tokenize both sides (two JVMs), then ``Cider``."""
    gts, res = pycoco_tokenize(refs), pycoco_tokenize(cands)
    return np.asarray(Cider().compute_score(gts, res)[1])


def project_eval(refs: Captions, cands: Captions) -> np.ndarray:
    tokenizer = PythonPTBTokenizer()
    return CiderD().compute_score(tokenizer.tokenize(refs), tokenizer.tokenize(cands))[1]


def project_scst(candidates: Sequence[str], references: Sequence[Sequence[str]],
                 reward: CiderDReward | None = None) -> np.ndarray:
    return (reward or CiderDReward())(candidates, references)


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


def equality_checks(refs: Captions, cands: Captions) -> dict[str, float | bool | int]:
    """pycocoevalcap ``Cider`` vs ``CiderD`` on one tokenization; Python vs Java tokens."""
    gts, res = pycoco_tokenize(refs), pycoco_tokenize(cands)
    ref_mean, ref_scores = Cider().compute_score(gts, res)
    our_mean, our_scores = CiderD().compute_score(gts, res)
    diff = max(abs(ref_mean - our_mean), float(np.max(np.abs(np.asarray(ref_scores) - our_scores))))
    python = PythonPTBTokenizer()
    mismatched = sum(python.tokenize({k: v})[k] != gts[k] for k, v in refs.items())
    mismatched += sum(python.tokenize({k: v})[k] != res[k] for k, v in cands.items())
    return {"cider_max_abs_diff": diff, "cider_identical": diff < TOLERANCE, "python_ptb_mismatched_sets": int(mismatched)}


def run(ctx: Context) -> CaseResult:
    result = CaseResult()
    folder = ctx.folder("captions")

    scst = load_caption_set(folder, SCST_VIDEOS[ctx.size], REFERENCES, SCST_CANDIDATES, seed=1)
    candidates, references = scst_batch(scst)
    refs, cands = as_ids(candidates, references)
    group = result.group("SCST step", PYCOCO, candidates=len(candidates), references_each=REFERENCES)
    _, base = ctx.time_variant(group, PYCOCO, lambda: pycoco_score(refs, cands), items=len(candidates))
    warm = CiderDReward()
    warm(candidates, references)  # an earlier step met these references
    _, ours = ctx.time_variant(group, PROJECT_SCST, lambda: project_scst(candidates, references, warm),
                               items=len(candidates))
    _, cold = ctx.time_variant(group, PROJECT_SCST_COLD, lambda: project_scst(candidates, references),
                               items=len(candidates))
    group.info["max_abs_diff_end_to_end"] = float(max(np.max(np.abs(base - ours)), np.max(np.abs(base - cold))))
    result.checks.update({f"scst_{k}": v for k, v in equality_checks(refs, cands).items()})

    full = load_caption_set(folder, EVAL_VIDEOS[ctx.size], REFERENCES, 1, seed=0)
    refs = {i: full.references[v] for i, v in enumerate(full.references)}
    cands = {i: full.candidates[v] for i, v in enumerate(full.references)}
    group = result.group("full evaluation", PYCOCO, videos=len(refs), references_each=REFERENCES)
    _, base = ctx.time_variant(group, PYCOCO, lambda: pycoco_score(refs, cands), items=len(refs))
    _, ours = ctx.time_variant(group, PROJECT_EVAL, lambda: project_eval(refs, cands), items=len(refs))
    group.info.update(pycoco_cider=float(base.mean()), lavis_cider=float(ours.mean()),
                      max_abs_diff_end_to_end=float(np.max(np.abs(base - ours))))
    result.checks.update({f"eval_{k}": v for k, v in equality_checks(refs, cands).items()})
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
