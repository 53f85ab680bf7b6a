"""Benchmarks of the project against the libraries and recipes it replaces (issue 9).

``python -m benchmarks list`` names the cases; ``python -m benchmarks run [NAME ...] --out
results.json`` runs them (see BENCHMARKS.md). Case modules are imported only when asked for, so
listing stays fast and a case's heavy imports never slow down another.
"""

from __future__ import annotations

import importlib

from benchmarks.harness import Case

CASE_MODULES = {
    "frame_sampling": "benchmarks.frame_sampling",
    "data_loading": "benchmarks.data_loading",
    "cider": "benchmarks.cider",
    "caption_metrics": "benchmarks.caption_metrics",
    "batch_inference": "benchmarks.batch_inference",
    "gpu_captioning": "benchmarks.gpu_captioning",
    "gpu_end_to_end": "benchmarks.gpu_end_to_end",
    "gpu_training": "benchmarks.gpu_training",
}


def load_case(name: str) -> Case:
    if name not in CASE_MODULES:
        raise KeyError(f"unknown benchmark {name!r}; choose from {', '.join(CASE_MODULES)}")
    return importlib.import_module(CASE_MODULES[name]).CASE
