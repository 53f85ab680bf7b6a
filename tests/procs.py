"""The processes a test starts, found (and ended) by a marker in their environment.

Ranks and workers inherit the environment of whatever started them, whatever session they run
in, so ``/proc/<pid>/environ`` finds all of a job's processes, orphans included.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

VARIABLE = "LAVIS_TEST_PROCESS_MARK"


class MarkedProcesses:
    """An environment to start a job with, and the live processes that carry it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.mark = uuid.uuid4().hex
        self.env = {**env, VARIABLE: self.mark}

    def alive(self) -> list[int]:
        """The pids of the live (not zombie) processes started with this environment."""
        needle = f"{VARIABLE}={self.mark}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                states = [_state(task) for task in (entry / "task").iterdir()]
            except (OSError, IndexError):  # gone meanwhile, or not ours to read
                continue
            # a killed process's leader is a zombie while its other threads still exit (and
            # hold its locks): it is alive until every thread is
            if any(s not in ("Z", "X") for s in states) and needle in environ.split(b"\0"):
                found.append(int(entry.name))
        return found

    def wait_gone(self, seconds: float) -> list[int]:
        """The processes still alive after up to ``seconds`` (``[]`` as soon as none is)."""
        deadline = time.monotonic() + seconds
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def kill_all(self) -> None:
        for pid in self.alive():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _state(task: Path) -> str:
    return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
