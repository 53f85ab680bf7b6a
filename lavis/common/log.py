"""Logging set-up: rank 0 talks to the console, every rank keeps its own file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

FORMAT = "%(asctime)s %(levelname)s [rank{rank}] %(name)s: %(message)s"


def setup_logging(rank: int = 0, log_dir: str | Path | None = None, level: int = logging.INFO) -> None:
    """Configure the root logger for one process.

    Only rank 0 writes to the console (other ranks stay quiet there, errors included, since their
    files hold them); with ``log_dir`` each rank also writes ``log_rank{rank}.txt``. Calling it
    again (e.g. once the output folder is known) replaces the handlers instead of doubling them.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_lavis", False):
            root.removeHandler(handler)
            handler.close()
    formatter = logging.Formatter(FORMAT.format(rank=rank), datefmt="%H:%M:%S")
    handlers: list[logging.Handler] = []
    if rank == 0:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(Path(log_dir) / f"log_rank{rank}.txt"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._lavis = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


def progress(iterable: Any = None, *, total: int | None = None, desc: str = "", rank: int = 0, **kwargs: Any) -> tqdm:
    """A tqdm bar on rank 0 only; redrawn every 0.1 s on a terminal, every 30 s into a log file."""
    interactive = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=rank != 0, mininterval=0.1 if interactive else 30,
                **kwargs)
