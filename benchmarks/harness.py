"""What every benchmark case shares: timing, results, the run context, the report.

A case measures *variants* of the same work in *groups* (e.g. one group per video); every group
names its baseline, measured in the same run, and each variant's ``ratio`` is
``baseline median / variant median`` (a speed-up: above 1 is faster than the baseline). Timings
are wall-clock seconds per call, a warm-up call first, then ``repeats`` calls; the median is the
number that counts, min and max show the spread.
"""

from __future__ import annotations

import gc
import importlib.metadata
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parents[1]
Size = Literal["tiny", "full"]


# ---------------------------------------------------------------------- timing
@dataclass
class Timing:
    """Seconds per call of the measured repeats (warm-up calls are not in ``times``)."""

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)


def measure(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[Timing, Any]:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; returns the timing
    and the last call's result (for correctness checks on what was timed)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        gc.collect()  # a collection triggered by the previous call must not land in this one
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return Timing(times), result


# ---------------------------------------------------------------------- results
@dataclass
class Variant:
    """One way of doing a group's work; ``items`` (e.g. videos per call) gives a throughput."""

    name: str
    timing: Timing | None = None
    items: int | None = None
    skipped: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Group:
    """Variants doing the same work, compared with the group's ``baseline`` variant."""

    name: str
    baseline: str
    variants: list[Variant] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, variant: Variant) -> Variant:
        self.variants.append(variant)
        return variant

    def get(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(f"group {self.name!r} has no variant {name!r}")

    def median(self, name: str) -> float | None:
        timing = self.get(name).timing
        return timing.median if timing is not None else None

    def ratio(self, name: str) -> float | None:
        """Baseline median / this variant's median (None when either was not measured)."""
        base, mine = self.median(self.baseline), self.median(name)
        if base is None or mine is None or mine <= 0:
            return None
        return base / mine


@dataclass
class Target:
    """Whether a case met its target (None: not measurable in this run) and the numbers why."""

    met: bool | None
    detail: str


@dataclass
class CaseResult:
    groups: list[Group] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)  # correctness results (e.g. equal scores)
    info: dict[str, Any] = field(default_factory=dict)
    target: Target | None = None
    skipped: str | None = None  # the whole case did not run, and why

    def group(self, name: str, baseline: str, **info: Any) -> Group:
        group = Group(name, baseline, info=dict(info))
        self.groups.append(group)
        return group


# ---------------------------------------------------------------------- cases
@dataclass
class Context:
    """What a case needs from the run: the size, how often to repeat, where inputs are cached."""

    size: Size
    repeats: int
    warmup: int
    workdir: Path

    @property
    def tiny(self) -> bool:
        return self.size == "tiny"

    def folder(self, *parts: str) -> Path:
        path = self.workdir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def measure(self, fn: Callable[[], Any], label: str) -> tuple[Timing, Any]:
        logger.info("  %s: %d warm-up + %d timed", label, self.warmup, self.repeats)
        timing, result = measure(fn, self.repeats, self.warmup)
        logger.info("  %s: median %.4f s", label, timing.median)
        return timing, result

    def time_variant(
        self, group: Group, name: str, fn: Callable[[], Any], items: int | None = None, **info: Any
    ) -> tuple[Variant, Any]:
        """Measure ``fn`` as variant ``name`` of ``group``; returns the variant and last result."""
        timing, result = self.measure(fn, f"{group.name} | {name}")
        return group.add(Variant(name, timing, items, info=dict(info))), result


@dataclass(frozen=True)
class Case:
    name: str
    description: str  # what is measured
    baseline: str  # what the variants are compared with
    target: str | None  # the goal, in words (None: numbers only)
    run: Callable[[Context], CaseResult]


# ---------------------------------------------------------------------- environment
def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM and GPU: what a timing cannot be read without."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": _ram_gib(),
        "platform": platform.platform(),
        "gpu": None,
    }
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


VERSIONED = ("torch", "transformers", "av", "pycocoevalcap", "numpy", "decord", "tokenizers")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    try:
        import cv2

        out["opencv"] = cv2.__version__
    except ImportError:
        out["opencv"] = None
    return out


def git_state() -> dict[str, Any]:
    """The commit measured (None outside a git checkout) and whether the tree had changes."""

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


# ---------------------------------------------------------------------- running and reporting
def run_cases(cases: list[Case], ctx: Context) -> dict[str, Any]:
    """Run each case (a failing case is recorded as an error; the others still run)."""
    report: dict[str, Any] = {
        "command": [Path(sys.executable).name, "-m", "benchmarks", *sys.argv[1:]],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "size": ctx.size,
        "repeats": ctx.repeats,
        "warmup": ctx.warmup,
        "workdir": str(ctx.workdir),
        "machine": machine_info(),
        "versions": versions(),
        "git": git_state(),
        "cases": {},
    }
    started = time.perf_counter()
    for case in cases:
        logger.info("case %s: %s", case.name, case.description)
        case_started = time.perf_counter()
        try:
            result = case.run(ctx)
        except Exception as err:  # recorded, so one broken case does not lose the others' numbers
            logger.exception("case %s failed", case.name)
            report["cases"][case.name] = {**_case_header(case), "status": "error",
                                          "reason": f"{type(err).__name__}: {err}", "variants": []}
            continue
        report["cases"][case.name] = case_json(case, result, time.perf_counter() - case_started)
    report["duration_s"] = round(time.perf_counter() - started, 2)
    return report


def _case_header(case: Case) -> dict[str, Any]:
    return {"description": case.description, "baseline": case.baseline, "target": case.target}


def case_json(case: Case, result: CaseResult, seconds: float) -> dict[str, Any]:
    out = {**_case_header(case), "status": "skipped" if result.skipped else "ok", "reason": result.skipped,
           "seconds": round(seconds, 2)}
    out["target_met"] = result.target.met if result.target else None
    out["target_detail"] = result.target.detail if result.target else None
    out["groups"] = {g.name: {"baseline": g.baseline, **g.info} for g in result.groups}
    out["variants"] = [_variant_json(g, v) for g in result.groups for v in g.variants]
    out["checks"] = result.checks
    out["info"] = result.info
    return out


def _variant_json(group: Group, v: Variant) -> dict[str, Any]:
    row: dict[str, Any] = {"group": group.name, "name": v.name, "baseline": v.name == group.baseline,
                           "skipped": v.skipped, "items": v.items, **({"info": v.info} if v.info else {})}
    if v.timing is not None:
        t = v.timing
        row.update(median_s=t.median, min_s=t.min, max_s=t.max, times_s=t.times, ratio=group.ratio(v.name))
        if v.items:
            row["items_per_s"] = v.items / t.median
    return row


def markdown_table(report: dict[str, Any]) -> str:
    """One row per variant; ``vs baseline`` is the speed-up over the group's baseline."""
    lines = ["| case | group | variant | median s | min-max s | items/s | vs baseline |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for name, case in report["cases"].items():
        if case["status"] != "ok":
            lines.append(f"| {name} | | {case['status']}: {case['reason']} | | | | |")
            continue
        for row in case["variants"]:
            if row.get("median_s") is None:
                lines.append(f"| {name} | {row['group']} | {row['name']} | skipped: {row['skipped']} | | | |")
                continue
            rate = f"{row['items_per_s']:.2f}" if row.get("items_per_s") else ""
            ratio = "baseline" if row["baseline"] else (f"{row['ratio']:.2f}x" if row["ratio"] else "")
            lines.append(f"| {name} | {row['group']} | {row['name']} | {row['median_s']:.4f} | "
                         f"{row['min_s']:.4f}-{row['max_s']:.4f} | {rate} | {ratio} |")
        if case.get("target"):
            met = {True: "met", False: "NOT met", None: "not measurable"}[case["target_met"]]
            notes.append(f"- {name}: target {case['target']}: **{met}** ({case['target_detail']})")
        for check, value in case.get("checks", {}).items():
            notes.append(f"- {name}: {check} = {value}")
    return "\n".join(lines + [""] + notes)
