"""``caption_metrics``: BLEU-1..4, METEOR, ROUGE-L and CIDEr on MSR-VTT-size output, end to end.

The project's ``lavis.metrics.caption.score_captions`` (one PTB tokenizer run for both sides,
METEOR's JVM started before tokenizing so it warms up meanwhile) against the naive sequence:
pycocoevalcap's PTB tokenizer on references, then on candidates, then each scorer one after
the other with a fresh METEOR (its JVM start on the critical path), as COCOEvalCap does minus
SPICE. Both must give the same numbers; wall time, no hard target.
"""

from __future__ import annotations

import logging

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from benchmarks.captions import load_caption_set
from benchmarks.harness import Case, CaseResult, Context
from lavis.metrics.caption import score_captions

logger = logging.getLogger(__name__)

VIDEOS = {"tiny": 20, "full": 2990}
REFERENCES = 20
NAIVE = "naive pycocoevalcap sequence"
PROJECT = "lavis score_captions"


def naive(references: dict[str, list[str]], predictions: dict[str, str]) -> dict[str, float]:
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in refs] for k, refs in references.items()})
    res = tokenizer.tokenize({k: [{"caption": predictions[k]}] for k in references})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    metrics = {f"Bleu_{i + 1}": float(b) for i, b in enumerate(bleu)}
    meteor = Meteor()
    metrics["METEOR"] = float(meteor.compute_score(gts, res)[0])
    del meteor  # its __del__ stops the JVM
    metrics["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    metrics["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return metrics


def run(ctx: Context) -> CaseResult:
    result = CaseResult()
    captions = load_caption_set(ctx.folder("captions"), VIDEOS[ctx.size], REFERENCES, 1, seed=0)
    references = captions.references
    predictions = {k: cands[0] for k, cands in captions.candidates.items()}
    group = result.group("end to end", NAIVE, videos=len(references), references_each=REFERENCES)
    _, base = ctx.time_variant(group, NAIVE, lambda: naive(references, predictions), items=len(references))
    _, ours = ctx.time_variant(group, PROJECT, lambda: score_captions(references, predictions), items=len(references))
    diff = max(abs(base[k] - ours[k]) for k in base)
    result.checks.update(same_scores=diff < 1e-9, max_abs_diff=diff)
    result.info["scores"] = ours
    return result


CASE = Case(
    name="caption_metrics",
    description="BLEU/METEOR/ROUGE-L/CIDEr wall time on 2,990 videos x 20 references",
    baseline=NAIVE,
    target=None,
    run=run,
)
