"""Voxel grids: sizes, resampling between grids, coarse copies, morphology in millimetres.

Every function takes arrays with the affine of their grid (voxel -> scanner RAS mm) and, where
two spaces meet, a world-to-world matrix; nothing here knows about atlases or registrations.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def zooms_of(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along each voxel axis of an affine."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def resample(
    data: np.ndarray,
    data_affine: np.ndarray,
    shape: tuple[int, ...],
    affine: np.ndarray,
    target_to_data: np.ndarray | None = None,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """Sample ``data`` (on grid ``data_affine``) onto grid (``shape``, ``affine``).

    ``target_to_data`` maps target world points to data world points (identity when both
    live in the same scanner space). Returns float32 on the target grid.
    """
    world = np.eye(4) if target_to_data is None else target_to_data
    vox = np.linalg.inv(data_affine) @ world @ affine
    data = np.asarray(data)
    if data.dtype == bool:
        data = data.view(np.uint8)
    if data.dtype not in _EXACT_IN_FLOAT32:
        data = data.astype(np.float32)
    # Small integer types go in as they are: interpolation reads every value as a double, so a
    # mask sampled as uint8 gives the float32 copy's result bit for bit without that copy.
    return ndimage.affine_transform(
        data, vox[:3, :3], vox[:3, 3], output_shape=tuple(shape), output=np.float32,
        order=order, mode="constant", cval=cval, prefilter=False,
    )


# Types whose every value a float32 holds exactly (so converting them first changes nothing).
_EXACT_IN_FLOAT32 = (np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.uint16), np.dtype(np.int16))


def coarse_grid(shape: tuple[int, ...], affine: np.ndarray, voxel_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """A grid covering the same box with ~``voxel_mm`` voxels along the same axes (never finer)."""
    zooms = zooms_of(affine)
    factor = np.maximum(voxel_mm / zooms, 1.0)
    new_shape = tuple(int(n) for n in np.maximum(np.ceil(np.asarray(shape[:3]) / factor), 1))
    new_affine = np.array(affine, dtype=float)
    new_affine[:3, :3] = affine[:3, :3] * factor
    # keep the box: first coarse voxel centre sits (factor-1)/2 fine voxels in
    new_affine[:3, 3] = (affine @ np.r_[(factor - 1) / 2, 1.0])[:3]
    return new_shape, new_affine


def coarse_copy(data: np.ndarray, affine: np.ndarray, voxel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased copy of ``data`` on a ~``voxel_mm`` grid (same scanner space)."""
    shape, new_affine = coarse_grid(data.shape, affine, voxel_mm)
    factor = zooms_of(new_affine) / zooms_of(affine)
    sigma = np.where(factor > 1, 0.42 * factor, 0.0)  # Gaussian matched to the box width
    smooth = ndimage.gaussian_filter(np.asarray(data, np.float32), sigma) if np.any(sigma > 0) else data
    return resample(smooth, affine, shape, new_affine), new_affine


def bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel bounds [lo, hi) of a mask's non-zero part (empty box for an empty mask)."""
    if not mask.any():
        return np.zeros(3, int), np.zeros(3, int)
    axes = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != k))) for k in range(3)]
    return np.array([a[0] for a in axes]), np.array([a[-1] + 1 for a in axes])


def edt_mm(inside: np.ndarray, zooms) -> np.ndarray:
    """Distance (mm, float64) from each ``inside`` voxel to the nearest voxel outside it (0 outside).

    Bit for bit ``scipy.ndimage.distance_transform_edt(inside, sampling=zooms)``: the same feature
    transform and the same arithmetic on its offsets, axis by axis, without the full index grid
    and the 3 x N float64 offsets scipy builds (a third of its time on a head).
    """
    inside = np.asarray(inside, bool)
    zooms = np.asarray(zooms, np.float64)
    nearest = ndimage.distance_transform_edt(inside, sampling=zooms, return_distances=False, return_indices=True)
    total = None
    for axis, n in enumerate(inside.shape):
        along = [1] * inside.ndim
        along[axis] = n
        offset = (nearest[axis] - np.arange(n, dtype=nearest.dtype).reshape(along)).astype(np.float64)
        offset *= zooms[axis]
        offset *= offset
        if total is None:
            total = offset
        else:
            total += offset
    return np.sqrt(total, out=total)


# dilate_mm unites shifted copies of the mask while the ball needs at most this many of them
# (each a pass over bytes); past that one distance transform (~500 such passes) is cheaper.
BALL_PASSES = 300
# ... and while the ball spans at most this many voxels along axis 0 (a run of each length is
# kept at once: as many copies of the box).
BALL_RUNS = 24


def _ball_offsets(zooms: np.ndarray, mm: float) -> dict[tuple[int, int], int] | None:
    """For each offset (n1, n2) along axes 1 and 2 (n1 signed, n2 >= 0), the largest n0 >= 0 whose
    voxel offset (n0, n1, n2) lies within ``mm``, measured exactly as ``edt_mm`` measures it.
    None when the ball is too large to pay (``BALL_PASSES``, ``BALL_RUNS``)."""
    def square(n: int, axis: int) -> np.float64:
        d = np.float64(n) * zooms[axis]
        return d * d

    def within(n0: int, n1: int, n2: int) -> bool:
        return bool(np.sqrt(square(n0, 0) + square(n1, 1) + square(n2, 2)) <= mm)

    reach = [0, 0, 0]
    for axis in range(3):
        n = [0, 0, 0]
        while True:
            n[axis] = reach[axis] + 1
            if not within(*n):
                break
            reach[axis] += 1
    if reach[0] > BALL_RUNS or (2 * reach[1] + 1) * (reach[2] + 1) + 2 * reach[0] + 2 * reach[2] + 1 > BALL_PASSES:
        return None
    out = {}
    for n2 in range(reach[2] + 1):
        for n1 in range(-reach[1], reach[1] + 1):
            if within(0, n1, n2):
                n0 = 0
                while n0 < reach[0] and within(n0 + 1, n1, n2):
                    n0 += 1
                out[(n1, n2)] = n0
    return out


def _shifted_or(target: np.ndarray, source: np.ndarray, axis: int, n: int) -> None:
    """target |= source moved by ``n`` voxels along ``axis`` (what leaves the grid is dropped)."""
    if n == 0:
        target |= source
        return
    to = [slice(None)] * target.ndim
    frm = [slice(None)] * target.ndim
    to[axis], frm[axis] = (slice(n, None), slice(None, -n)) if n > 0 else (slice(None, n), slice(-n, None))
    target[tuple(to)] |= source[tuple(frm)]


def _ball_dilate(mask: np.ndarray, offsets: dict[tuple[int, int], int]) -> np.ndarray:
    """``mask`` united with its copies at every offset of the ball ``offsets`` (:func:`_ball_offsets`):
    runs along axis 0 first (one copy per run length), then axis 1 per |n2|, then axis 2."""
    lengths = sorted(set(offsets.values()))
    runs = {0: mask}
    grown = mask
    for k in range(1, lengths[-1] + 1):
        grown = grown.copy()
        _shifted_or(grown, mask, 0, k)
        _shifted_or(grown, mask, 0, -k)
        runs[k] = grown
    out = np.zeros_like(mask)
    for n2 in sorted({n2 for _, n2 in offsets}):
        plane = np.zeros_like(mask)
        for (n1, m2), n0 in offsets.items():
            if m2 == n2:
                _shifted_or(plane, runs[n0], 1, n1)
        _shifted_or(out, plane, 2, n2)
        if n2:
            _shifted_or(out, plane, 2, -n2)
    return out


def dilate_mm(mask: np.ndarray, zooms, mm: float) -> np.ndarray:
    """Grow a boolean mask by ``mm`` millimetres (anisotropic voxels respected).

    A voxel joins when its distance to the mask, as ``scipy.ndimage.distance_transform_edt``
    measures it, is at most ``mm``. Works on the mask's bounding box plus margin only; a small
    ball is applied as shifted copies of the mask (several times faster than the distance
    transform, and the same voxels), a large one through :func:`edt_mm`.
    """
    mask = np.asarray(mask, bool)
    if mm <= 0 or not mask.any():
        return mask.copy()
    zooms = np.asarray(zooms, float)
    pad = np.ceil(mm / zooms).astype(int) + 1
    lo, hi = bounding_box(mask)
    lo = np.maximum(lo - pad, 0)
    hi = np.minimum(hi + pad, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = np.zeros_like(mask)
    offsets = _ball_offsets(zooms, mm) if mask.ndim == 3 else None
    if offsets is not None:
        out[box] = _ball_dilate(mask[box], offsets)
    else:
        out[box] = edt_mm(~mask[box], zooms) <= mm
    return out


def distance_inside_mm(mask: np.ndarray, zooms, cap_mm: float) -> np.ndarray:
    """Distance (mm, capped at ``cap_mm``) from each mask voxel to the nearest voxel outside it."""
    mask = np.asarray(mask, bool)
    out = np.zeros(mask.shape, np.float32)
    if not mask.any():
        return out
    lo, hi = bounding_box(mask)
    lo = np.maximum(lo - 1, 0)
    hi = np.minimum(hi + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out[box] = np.minimum(edt_mm(mask[box], zooms), cap_mm)
    return out


def distance_outside_mm(mask: np.ndarray, zooms, cap_mm: float) -> np.ndarray:
    """Distance (mm, capped at ``cap_mm``) from each voxel outside ``mask`` to the mask (0 inside).

    Computed on the mask's box grown by ``cap_mm`` only: every voxel beyond is at least that far."""
    mask = np.asarray(mask, bool)
    out = np.full(mask.shape, cap_mm, np.float32)
    if not mask.any():
        return out
    pad = np.ceil(cap_mm / np.asarray(zooms, float)).astype(int) + 1
    lo, hi = bounding_box(mask)
    box = tuple(slice(a, b) for a, b in zip(np.maximum(lo - pad, 0), np.minimum(hi + pad, mask.shape)))
    out[box] = np.minimum(edt_mm(~mask[box], zooms), cap_mm)
    return out


def world_points(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Scanner RAS mm coordinates (n, 3) of a mask's voxel centres."""
    return np.argwhere(mask) @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
