"""``sim_m``: did the selector find, for every true frame, a frame that looks like it?

A sample scores 1 at threshold ``m`` when every true frame has a selected frame whose embedding
(DINOv2 CLS, L2-normalised) has cosine similarity >= m with it. Reported per ``m`` for the
selector, for uniform frame choice (the baseline), and for the oracle: the best any selector of
``k`` candidates could do. ``hit@tol`` is the timestamp version: every true time has a selected
time within ``tol`` seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

MAX_EXACT_COLUMNS = 20  # beyond this many useful candidates, the oracle uses greedy set cover


def best_similarity(sims: torch.Tensor, chosen: Sequence[int]) -> list[float]:
    """Per true frame (rows of ``sims``), the highest similarity to a chosen candidate (column)."""
    if not chosen:
        return [float("-inf")] * sims.shape[0]
    return sims[:, list(chosen)].max(dim=1).values.tolist()


def coverable(cover: torch.Tensor, k: int) -> bool:
    """Can ``k`` columns of the boolean ``cover`` (true frames x candidates) cover every row?"""
    if not bool(cover.any(dim=1).all()):
        return False
    if cover.shape[0] <= k:
        return True
    useful = [j for j in range(cover.shape[1]) if cover[:, j].any()]
    if len(useful) <= MAX_EXACT_COLUMNS:
        return any(bool(cover[:, list(cols)].any(dim=1).all()) for cols in itertools.combinations(useful, min(k, len(useful))))
    remaining = torch.ones(cover.shape[0], dtype=torch.bool)  # greedy: a lower bound on the oracle
    for _ in range(k):
        j = int((cover & remaining.unsqueeze(1)).sum(dim=0).argmax())
        remaining &= ~cover[:, j]
    return not bool(remaining.any())


def time_hit(true_times: Sequence[float], chosen_times: Sequence[float], tolerance: float) -> bool:
    """Every true time has a chosen time within ``tolerance`` seconds."""
    return all(any(abs(t - c) <= tolerance for c in chosen_times) for t in true_times)


def summarize(results: list[dict], thresholds: Sequence[float], tolerance: float) -> dict[str, float]:
    """Corpus metrics from per-sample results (``valid_step`` of the frame-selection task)."""
    scored = [r for r in results if r.get("true_times")]
    metrics: dict[str, float] = {"num_samples": float(len(scored))}
    if not scored:
        return metrics
    n = len(scored)
    for m in thresholds:
        key = f"{m:.2f}"
        metrics[f"sim_{key}"] = sum(min(r["selector_similarity"]) >= m for r in scored) / n
        metrics[f"uniform_sim_{key}"] = sum(min(r["uniform_similarity"]) >= m for r in scored) / n
        metrics[f"oracle_sim_{key}"] = sum(bool(r["oracle"][key]) for r in scored) / n
    metrics[f"hit@{tolerance:g}s"] = sum(time_hit(r["true_times"], r["selected_times"], tolerance) for r in scored) / n
    metrics[f"uniform_hit@{tolerance:g}s"] = (
        sum(time_hit(r["true_times"], r["uniform_times"], tolerance) for r in scored) / n
    )
    return metrics
