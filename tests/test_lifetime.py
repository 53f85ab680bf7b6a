"""Ranks and workers end with their parent, even when it is SIGKILLed and they run in a session
of their own (as torchrun starts its ranks)."""

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# A launcher that starts a child in its own session (like torchrun) and reports its pid once the
# child has its guard; the child then sleeps, unless its guard ends it.
LAUNCHER = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, start_new_session=True)
child.stdout.readline()
print(child.pid, flush=True)
child.wait()
"""
CHILD = """
import importlib.util, time
spec = importlib.util.spec_from_file_location("lifetime", "lavis/common/lifetime.py")  # not all of lavis: fast
lifetime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lifetime)
lifetime.end_with_parent("child", kernel={kernel}, poll_seconds={poll})
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("kernel,poll", [(True, 60), (False, 0.1)], ids=["pdeathsig", "watchdog"])
def test_a_child_in_its_own_session_ends_when_its_parent_is_killed(kernel, poll, marked):
    """Either way alone ends the child: the kernel's signal (the watchdog sleeps for a minute),
    or the watchdog (without the kernel's signal)."""
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, CHILD.format(kernel=kernel, poll=poll)], cwd=ROOT,
                                env=marked.env, stdout=subprocess.PIPE, text=True)
    child = int(launcher.stdout.readline())
    assert child in marked.alive()
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    assert marked.wait_gone(3) == []


def test_a_live_parent_keeps_its_child(marked):
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(kernel=True, poll=0.1)], cwd=ROOT, env=marked.env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    assert child.poll() is None and child.pid in marked.wait_gone(1)  # still there a second later
    child.kill()
    child.wait()


def test_a_worker_whose_parent_died_before_it_started_ends_at_once(marked):
    """A worker's initializer is told its parent's pid: a parent already gone is caught too."""
    late = CHILD.replace('"child", ', '"child", parent=os.getppid() + 1, ').replace("import ", "import os, ", 1)
    child = subprocess.run([sys.executable, "-c", late.format(kernel=True, poll=0.1)], cwd=ROOT, env=marked.env,
                           capture_output=True, text=True, timeout=30)
    assert child.returncode == -signal.SIGKILL and "ready" not in child.stdout
    assert "its parent" in child.stderr and "is gone" in child.stderr
