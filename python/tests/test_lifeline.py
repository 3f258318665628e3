"""micanon.lifeline: an engine whose parent is killed ends on its own, by each guard alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from micanon import lifeline

PYTHON_DIR = str(Path(__file__).resolve().parents[1])

# The parent starts a child that arms one guard and then blocks in C (a read on a pipe no one
# writes to), prints the child's pid, and waits; the test SIGKILLs the parent.
PARENT = textwrap.dedent(
    """
    import os, subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], env={**os.environ, "PYTHONPATH": sys.argv[2]})
    print(child.pid, flush=True)
    child.wait()
    """
)

CHILD = {
    "pdeathsig": "from micanon import lifeline; import os; lifeline.set_parent_death_signal(); r, w = os.pipe(); os.read(r, 1)",
    # The watchdog needs the GIL, so the child sleeps in Python-releasing C code (time.sleep).
    "watchdog": "from micanon import lifeline; import os, time; lifeline.watch_parent(os.getppid(), 0.1); time.sleep(60)",
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return ") Z " not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal and /proc are Linux")
@pytest.mark.parametrize("guard", sorted(CHILD))
def test_child_ends_when_its_parent_is_killed(guard: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD[guard], PYTHON_DIR], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    time.sleep(0.3)
    assert _alive(child_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 3
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    gone = not _alive(child_pid)
    if not gone:
        os.kill(child_pid, signal.SIGKILL)
    assert gone, f"{guard}: the child outlived its parent by 3 s"


def test_not_armed_without_a_parent_from_the_bridge() -> None:
    assert lifeline.bind_to_parent({}) == {"armed": False}
