"""``python -m benchmarks run [NAME ...] --out results.json [--size tiny|full] [--repeats N] [--workdir DIR]``
and ``python -m benchmarks list``.

The markdown table goes to stdout, progress to stderr (logging). Exit status: 0 when every case
ran or was skipped (a missed target is a result, not a failure), 1 when a case raised.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from benchmarks import CASE_MODULES, load_case
from benchmarks.harness import ROOT, Context, markdown_table, run_cases

logger = logging.getLogger("benchmarks")
DEFAULT_WORKDIR = ROOT / "output" / "benchmarks"
DEFAULT_REPEATS = {"full": 3, "tiny": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Project benchmarks (BENCHMARKS.md).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="name, measurement and target of every case")
    run = sub.add_parser("run", help="run cases (all by default)")
    run.add_argument("names", nargs="*", metavar="NAME", help=f"cases to run: {', '.join(CASE_MODULES)}")
    run.add_argument("--out", required=True, help="JSON report to write")
    run.add_argument("--size", choices=("tiny", "full"), default="full",
                     help="full: realistic inputs; tiny: minimal inputs, a smoke test (timings mean little)")
    run.add_argument("--repeats", type=int, help="timed calls per variant (default: 3 full, 1 tiny)")
    run.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                     help=f"where generated inputs are cached between runs (default: {DEFAULT_WORKDIR})")
    args = parser.parse_args(argv)
    if args.command == "run":
        unknown = [n for n in args.names if n not in CASE_MODULES]
        if unknown:
            parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASE_MODULES)}")
        if args.repeats is not None and args.repeats < 1:
            parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    if args.command == "list":
        for name in CASE_MODULES:
            case = load_case(name)
            print(f"{name}: {case.description}\n    baseline: {case.baseline}\n    target: {case.target or 'none (numbers only)'}")
        return 0
    ctx = Context(
        size=args.size,
        repeats=args.repeats or DEFAULT_REPEATS[args.size],
        warmup=1 if args.size == "full" else 0,  # tiny is a smoke test: one call per variant
        workdir=args.workdir.resolve(),
    )
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    cases = [load_case(name) for name in (args.names or CASE_MODULES)]
    report = run_cases(cases, ctx)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_table(report))
    logger.info("wrote %s (%.1f s)", out, report["duration_s"])
    return 1 if any(case["status"] == "error" for case in report["cases"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
