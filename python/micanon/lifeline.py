"""The engine's life is bound to the CLI that started it.

pythonia spawns this interpreter with stdin/stdout/stderr inherited from the CLI and talks over
a separate IPC socket (``NODE_CHANNEL_FD``), which pythonia's own main-thread loop reads. Engine
calls run on that same main thread, so the end of the socket is only noticed between calls: a
CLI killed with SIGKILL during a registration used to leave the engine running (and writing) for
a minute. Two guards, in order of strength:

1. ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (Linux): the kernel kills this process the moment the
   thread that spawned it exits. Node spawns child processes from its main thread (libuv's
   ``uv_spawn`` forks in the calling thread, and pythonia is required on the main thread), so
   that thread's exit is the CLI's exit. SIGKILL, not SIGTERM: a Python signal handler would
   wait for the main thread, which may sit in ANTs C++ code for minutes holding the GIL.
2. A watchdog thread (any POSIX system) that polls the parent pid: when the CLI is gone the
   interpreter is reparented (``getppid`` changes) and the watchdog ends the process. It needs
   the GIL, so it is the fallback where prctl is unavailable, not the main guard.

Armed only when the bridge says who the parent is (``MICANON_ENGINE_PARENT``), so importing
micanon.api in tests or scripts never ties that interpreter to anything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
PARENT_ENV = "MICANON_ENGINE_PARENT"
#: Seconds between two looks at the parent pid (the watchdog's reaction time).
WATCH_INTERVAL_S = 0.5


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the Linux kernel to send ``sig`` to this process when its parent thread exits.

    Returns False where that is not possible (not Linux, no libc, prctl refused).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _end_now() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def watch_parent(parent_pid: int, interval_s: float = WATCH_INTERVAL_S) -> threading.Thread:
    """Start a daemon thread that ends this process once ``parent_pid`` is no longer its parent."""

    def watch() -> None:
        stopped = threading.Event()
        while not stopped.wait(interval_s):
            if os.getppid() != parent_pid:
                _end_now()

    thread = threading.Thread(target=watch, name="micanon-lifeline", daemon=True)
    thread.start()
    return thread


def bind_to_parent(environ: dict[str, str] | None = None) -> dict[str, object]:
    """Arm both guards when ``MICANON_ENGINE_PARENT`` names our parent; say what was armed.

    A parent that died before this ran (the kernel only signals deaths after prctl) is caught
    by comparing ``getppid`` with the pid the bridge gave.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(PARENT_ENV)
    if not value:
        return {"armed": False}
    parent_pid = int(value)
    pdeathsig = set_parent_death_signal()
    if os.getppid() != parent_pid:
        _end_now()
    watch_parent(parent_pid)
    return {"armed": True, "parent": parent_pid, "pdeathsig": pdeathsig, "watchdog": True}
