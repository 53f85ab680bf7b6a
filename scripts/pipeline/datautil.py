"""Set operations on pipeline outputs, by row id (Open-Sora's datautil, de-duplicating by id).

    python scripts/pipeline/datautil.py merge meta_caption.csv meta_cmotion.csv --output meta_all.csv
    python scripts/pipeline/datautil.py difference all.jsonl done.jsonl --output todo.csv
    python scripts/pipeline/datautil.py intersection a.csv b.csv --output both.jsonl

Inputs are ``.csv`` or ``.jsonl`` with an ``id`` column; the output's extension picks its format.
``merge`` joins the columns of rows with the same id; ``difference`` keeps the first input's rows
whose id is in no other input; ``intersection`` those whose id is in all of them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lavis.common.log import setup_logging  # noqa: E402
from lavis.pipeline import outputs  # noqa: E402

logger = logging.getLogger("datautil")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("operation", choices=("merge", "difference", "intersection"))
    parser.add_argument("inputs", nargs="+", help=".csv or .jsonl files with an 'id' column")
    parser.add_argument("--output", required=True, help="a .csv or .jsonl file")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        tables = [outputs.read_table(path) for path in args.inputs]
        if args.operation != "merge" and len(tables) < 2:
            raise ValueError(f"{args.operation} needs at least two inputs")
        if args.operation == "merge":
            rows = outputs.merge(tables)
        else:
            rows = getattr(outputs, args.operation)(tables[0], tables[1:])
        suffix = Path(args.output).suffix
        if suffix not in (".csv", ".jsonl"):
            raise ValueError(f"--output must end in .csv or .jsonl, got {args.output}")
        (outputs.write_csv if suffix == ".csv" else outputs.write_jsonl)(rows, args.output)
    except (OSError, ValueError) as err:
        logger.error("%s", err)
        return 2
    logger.info("%s of %d inputs (%s rows): %d rows -> %s", args.operation, len(tables),
                "+".join(str(len(t)) for t in tables), len(rows), args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
