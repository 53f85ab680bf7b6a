"""Atomic file writes (readers see the old file or the complete new one, never half of one)
and one-writer locks on files that are appended to."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path``; fsync and rename over it on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    with atomic_open(path, "w") as f:
        json.dump(obj, f, ensure_ascii=False)


class FileBusyError(OSError):
    """Another live process holds the writer lock of a file this one wants to write."""


class WriterLock:
    """An exclusive lock on ``<path>.lock`` for as long as this process writes ``path``.

    Two writers appending to one file interleave and duplicate its records (a rerun started
    beside a job that is still running); the second one fails at once instead. The kernel
    releases the lock when its holder dies, however it dies, so a killed job never leaves a
    stale lock behind: the lock file itself stays, holding the last writer's pid.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = _lock(self.path)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Unlock (explicitly: forked workers share the open lock file and would keep it locked)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _lock_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


def check_no_writer(path: str | os.PathLike[str]) -> None:
    """Raise ``FileBusyError`` when another process holds ``path``'s writer lock (only probes)."""
    if _lock_path(path).is_file():
        fd = _lock(Path(path))
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# A killed holder's lock is released only once the kernel has torn down all its threads,
# some tens of milliseconds after its pid already reads as a zombie: a rerun started right
# after a kill waits that long rather than calling the dead job "still going".
EXIT_GRACE_S = 5.0


def _lock(path: Path) -> int:
    """The open lock file of ``path``, locked; or ``FileBusyError`` naming the holder."""
    lock = _lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    deadline = time.monotonic() + EXIT_GRACE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            if _is_exiting(holder) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            os.close(fd)
            who = f"another process (pid {holder})" if holder.isdigit() else "another process"
            raise FileBusyError(
                f"{path} is being written by {who}, which holds {lock}: is an earlier run still going? "
                "Let it finish or stop it, then rerun"
            ) from None


def _is_exiting(pid: str) -> bool:
    """Whether the lock's recorded holder is a zombie or gone (killed, its lock soon released).

    A forked worker that inherited the lock, or a holder on another machine, keeps it busy
    past the grace, and the error names it then."""
    try:
        state = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return True
    return state in ("Z", "X")
