"""Pipeline outputs: JSONL, CSV and (with pyarrow) Parquet, written atomically; set operations.

Rows are dicts keyed by ``id``. In CSV, lists and dicts are JSON-encoded so they read back
losslessly. ``merge`` / ``difference`` / ``intersection`` (``scripts/pipeline/datautil.py``)
work by id, never by position: merging outputs of two runs or two stages joins their columns,
and an id appearing twice in one input is kept once (the later row wins).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lavis.common.io import atomic_open

logger = logging.getLogger(__name__)
LEADING = ("id", "video_id", "start", "end", "path")


def columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every key, the identifying ones first, then in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return [k for k in LEADING if k in seen] + [k for k in seen if k not in LEADING]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> None:
    with atomic_open(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    names = columns(rows)
    with atomic_open(path) as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for row in rows:
            writer.writerow([cell(row.get(name)) for name in names])


def write_parquet(rows: list[dict[str, Any]], path: str | Path) -> bool:
    """Parquet when pyarrow is installed (nested values JSON-encoded, like the CSV); else False."""
    if importlib.util.find_spec("pyarrow") is None:
        return False
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = columns(rows)
    table = pa.table({n: [None if row.get(n) is None else cell(row.get(n)) for row in rows] for n in names})
    with atomic_open(path, "wb") as f:
        pq.write_table(table, f)
    return True


def write_outputs(rows: list[dict[str, Any]], output_csv: str | Path) -> list[Path]:
    """``X.csv`` plus ``X.jsonl`` (and ``X.parquet``) beside it; returns the paths written."""
    output_csv = Path(output_csv)
    written = [output_csv, output_csv.with_suffix(".jsonl")]
    write_csv(rows, written[0])
    write_jsonl(rows, written[1])
    if write_parquet(rows, output_csv.with_suffix(".parquet")):
        written.append(output_csv.with_suffix(".parquet"))
    return written


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """A pipeline output (``.jsonl`` or ``.csv``) as rows; every row must have an ``id``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        raise ValueError(f"{path}: expected a .jsonl or .csv file")
    missing = [i for i, row in enumerate(rows) if not row.get("id")]
    if missing:
        raise ValueError(f"{path}: rows {missing[:5]} have no 'id' (outputs merge by id)")
    return rows


def by_id(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows keyed by id; a repeated id keeps its later row (de-duplication)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out[str(row["id"])] = row
    return out


def merge(tables: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Union by id; the columns of every table are joined. On a clash the later table wins,
    except that an empty value never erases a filled one."""
    merged: dict[str, dict[str, Any]] = {}
    for table in tables:
        for rid, row in by_id(table).items():
            joined = merged.setdefault(rid, {})
            for key, value in row.items():
                if value not in (None, "") or key not in joined:
                    joined[key] = value
    return list(merged.values())


def difference(first: list[dict[str, Any]], others: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The rows of ``first`` whose id is in none of ``others``."""
    drop = {rid for table in others for rid in by_id(table)}
    return [row for rid, row in by_id(first).items() if rid not in drop]


def intersection(first: list[dict[str, Any]], others: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The rows of ``first`` whose id is in every one of ``others`` (``first``'s columns)."""
    keep = set(by_id(first))
    for table in others:
        keep &= set(by_id(table))
    return [row for rid, row in by_id(first).items() if rid in keep]
