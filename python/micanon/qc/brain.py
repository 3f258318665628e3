"""The brain check: every stored value inside the brain guard kept bit for bit, re-counted from the
input and output files, independent of the count the engine reported (which must be 0 too).

A fit that put the face ROI inside the subject's own brain fails it as well: the guard took those
voxels back, but the fit is wrong (the fit check of python/micanon/anonymize/fit_check.py says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from micanon.anonymize import guard
from micanon.io import StoredImage
from micanon.qc.request import Registration


def native_mask(path: Path, on: StoredImage, role: str) -> np.ndarray:
    """A native-grid mask file (voxels > 0) checked to lie on ``on``'s grid; boolean (x, y, z)."""
    img = nib.load(str(path))
    if tuple(img.shape[:3]) != on.shape3d or not np.allclose(img.affine, on.affine, atol=1e-3):
        raise ValueError(f"{path}: {role} is not on the grid of {on.path}")
    return np.asarray(img.dataobj) > 0


def brain_changes(before: StoredImage, after: StoredImage, brain_guard: np.ndarray) -> guard.GuardReport:
    """Guard voxels whose stored value differs between input and output (all of them when the
    shape or stored dtype changed: then no voxel keeps its bits)."""
    if before.raw.shape != after.raw.shape:
        voxels = int(brain_guard.sum()) * before.volumes
        return guard.GuardReport(brain_voxels_changed=voxels, guard_voxels=voxels)
    return guard.count_changed(before.raw, after.raw, brain_guard)


def brain_check(before: StoredImage, after: StoredImage, brain_guard: np.ndarray | None, engine_changed: int,
                engine_guard_voxels: int, registration: Registration) -> dict[str, Any]:
    """The record's brain check: the independent count (from the two files and the guard mask, on
    the input's grid) next to the engine's.

    Without a guard mask nothing can be re-checked: the engine's count stands (``rechecked``
    False). Either count above 0 fails, and so does a fit that put the face ROI inside the
    subject's own brain (``registration.hard``).
    """
    if brain_guard is None:
        value, voxels, rechecked = engine_changed, engine_guard_voxels, False
    else:
        report = brain_changes(before, after, brain_guard)
        value, voxels, rechecked = report.brain_voxels_changed, report.guard_voxels, True
    out = {
        "value": int(value),
        "guard_voxels": int(voxels),
        "pass": value == 0 and engine_changed == 0 and not registration.hard,
        "engine_value": int(engine_changed),
        "rechecked": rechecked,
    }
    if registration.hard:
        out["face_roi_in_brain"] = registration.check.get("reason", "the fit put the face ROI inside the brain")
    return out
