"""Caption metrics exactly as pycocoevalcap computes them, without ``COCOEvalCap.evaluate()``.

``COCOEvalCap.evaluate()`` always builds SPICE, which downloads Stanford CoreNLP on first use and
so fails offline before scoring anything; here each scorer is run directly on the output of the
same PTB tokenizer. METEOR's JVM (about 11 s to start) is launched first and warms up while the
tokenizer runs; both Java programs run under a timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from lavis.metrics.ptb import JavaPTBTokenizer, require_java

logger = logging.getLogger(__name__)
T = TypeVar("T")

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def score_captions(
    references: dict[Any, list[str]],
    predictions: dict[Any, str],
    spice: bool = False,
    timeout: float = 600.0,
) -> dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr (CIDEr-D) and optionally SPICE, on raw captions.

    ``references``: video id -> reference captions; ``predictions``: video id -> one caption.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    missing = [k for k in predictions if k not in references]
    if missing:
        raise KeyError(f"{len(missing)} predicted videos have no references (e.g. {missing[0]!r})")
    if not predictions:
        raise ValueError("no predictions to score")
    require_java()
    meteor = Meteor()  # starts its JVM now; it warms up while the tokenizer runs
    try:
        merged = {("gt", k): references[k] for k in predictions}
        merged.update({("res", k): [predictions[k]] for k in predictions})
        tokens = JavaPTBTokenizer(timeout).tokenize(merged)
        gts = {k: tokens[("gt", k)] for k in predictions}
        res = {k: tokens[("res", k)] for k in predictions}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        metrics = {f"Bleu_{i + 1}": float(b) for i, b in enumerate(bleu)}
        metrics["METEOR"] = float(_with_timeout(lambda: meteor.compute_score(gts, res)[0], timeout, meteor))
        metrics["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
        metrics["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    finally:
        _stop(meteor)
    if spice:
        metrics["SPICE"] = _spice(gts, res)
    return metrics


def _with_timeout(fn: Callable[[], T], timeout: float, meteor: Any) -> T:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except Exception as err:  # re-raised below, in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        meteor.meteor_p.kill()
        raise TimeoutError(f"METEOR took longer than {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _stop(meteor: Any) -> None:
    process = meteor.meteor_p
    if process.poll() is None:
        process.stdin.close()
        process.kill()
        process.wait()


def _spice(gts: dict, res: dict) -> float:
    from pycocoevalcap.spice.spice import Spice

    try:
        return float(Spice().compute_score(gts, res)[0])
    except Exception as err:  # SPICE fetches CoreNLP models on first use; offline that fails
        raise RuntimeError(
            f"SPICE failed ({err}); it needs Stanford CoreNLP models, which pycocoevalcap downloads "
            "on first use. Run once with internet access, or leave spice off"
        ) from err
