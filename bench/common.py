"""Shared pieces of the benchmark's Python side: stage timers, peak memory, versions, BIDS lookup.

Nothing here is part of the engine; bench/profile.py and bench/reference.py import it by path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path


class Stages:
    """Exclusive wall time per named stage: a nested stage's time is not counted twice.

    ``stage(name)`` is a context manager; ``wrap(name_of, fn)`` returns ``fn`` timed under the
    name ``name_of(*args, **kwargs)`` gives (None: add the time to the enclosing stage).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []  # [name, start, child seconds]

    @contextmanager
    def stage(self, name: str | None):
        if name is None:
            yield
            return
        entry = [name, time.perf_counter(), 0.0]
        self._stack.append(entry)
        try:
            yield
        finally:
            self._stack.pop()
            total = time.perf_counter() - entry[1]
            self.seconds[name] += total - entry[2]
            if self._stack:
                self._stack[-1][2] += total

    def wrap(self, name_of, fn):
        def timed(*args, **kwargs):
            with self.stage(name_of(*args, **kwargs)):
                return fn(*args, **kwargs)

        timed.__wrapped__ = fn
        return timed

    @property
    def depth(self) -> int:
        return len(self._stack)

    def as_dict(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in self.seconds.items()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB; ru_maxrss is in kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def versions() -> dict:
    """Versions of the interpreter and the image libraries the benchmark uses."""
    import ants
    import nibabel
    import numpy

    out = {"python": platform.python_version(), "antspyx": getattr(ants, "__version__", "unknown"),
           "nibabel": nibabel.__version__, "numpy": numpy.__version__}
    try:
        import micanon

        out["micanon"] = micanon.__version__
    except ImportError:
        out["micanon"] = None
    return out


def session_images(bids_dir: str, subject: str) -> dict:
    """The first session of ``subject``: {"t1w": path, "others": [paths]} (anat .nii/.nii.gz only)."""
    sub = Path(bids_dir) / f"sub-{subject}"
    sessions = sorted(p for p in sub.glob("ses-*") if p.is_dir()) or [sub]
    anat = sessions[0] / "anat"
    images = sorted(str(p) for p in anat.iterdir() if p.name.endswith((".nii", ".nii.gz")))
    t1w = [p for p in images if Path(p).name.split(".")[0].endswith("_T1w")]
    if not t1w:
        raise SystemExit(f"{anat}: no T1w image")
    return {"t1w": t1w[0], "others": [p for p in images if p != t1w[0]]}


def short_name(path: str) -> str:
    """BIDS suffix of an image path (T1w, PDw, angio, ...), for stage names."""
    return Path(path).name.split(".")[0].rsplit("_", 1)[-1]


def write_json(path: str | None, payload: dict) -> None:
    text = json.dumps(payload, indent=1)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    else:
        print(text)


def set_threads(threads: int) -> None:
    """Thread counts for ITK and BLAS, before ANTs or numpy do any work."""
    for var in ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def session_parser(description: str) -> argparse.ArgumentParser:
    """The options every bench script shares: which session, which atlas, threads, JSON output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bids", required=True)
    parser.add_argument("--subject", required=True)
    parser.add_argument("--atlas", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    return parser
