"""Processes that end with their parent: ranks with their launcher, workers with their rank.

torchrun starts every rank in a session of its own, so a SIGKILL of torchrun (even of its
whole process group) reaches no rank, and a forked decode worker waits on its task queue
forever once its rank is gone. Such orphans would go on writing the job's part files beside a
rerun. Each rank and worker calls ``end_with_parent`` as it starts:

* a watchdog thread polls ``os.getppid()``: it changes when the parent dies (the orphan is
  handed to init or a subreaper), and the process then kills itself (SIGKILL: no clean-up that
  could wait for dead peers; its own workers see their parent go and follow);
* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` besides, which the kernel delivers even to a
  process stuck in native code that holds the GIL. It fires when the *thread* that forked us
  ends, not the process, so it is only asked for (``kernel=True``) where the parent forks from
  its main thread: torchrun's agent, and our DataLoader and decode pools.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_guarded_pid = 0  # the process whose watchdog runs (a forked child inherits this, not the thread)


def end_with_parent(name: str, parent: int | None = None, *, kernel: bool = True, poll_seconds: float = 0.5) -> None:
    """Kill this process within ``poll_seconds`` of its parent's death (at once where the
    kernel can tell). ``parent``: the pid the caller expects (a worker's initializer gets it
    from the parent), so a parent that died before we got here is caught too."""
    global _guarded_pid
    if _guarded_pid == os.getpid():
        return
    _guarded_pid = os.getpid()
    if kernel and sys.platform.startswith("linux"):
        _kernel_death_signal()
    expected = os.getppid() if parent is None else parent
    if os.getppid() != expected:
        _die(name, expected)
    threading.Thread(target=_watch, args=(name, expected, poll_seconds), name="end-with-parent", daemon=True).start()


def _kernel_death_signal() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (OSError, AttributeError) as err:  # the watchdog alone still ends the process
        logger.debug("no kernel parent-death signal: %s", err)


def _watch(name: str, parent: int, poll_seconds: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll_seconds)
    _die(name, parent)


def _die(name: str, parent: int) -> None:
    logger.error("%s (pid %d): its parent (pid %d) is gone; stopping", name, os.getpid(), parent)
    os.kill(os.getpid(), signal.SIGKILL)


def dataloader_worker_init(parent: int, worker_id: int) -> None:
    """A DataLoader ``worker_init_fn``, bound to the rank's pid in the rank
    (``partial(dataloader_worker_init, os.getpid())``): the worker ends with its rank. (torch's
    own check waits for the worker's current item and up to 5 s more.)"""
    end_with_parent(f"DataLoader worker {worker_id}", parent)
