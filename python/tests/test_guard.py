"""guard: guard voxels are copied from the input and compared bit for bit."""

from __future__ import annotations

import numpy as np

from micanon.anonymize.guard import count_changed, protect


def _guard(shape=(6, 5, 4)):
    guard = np.zeros(shape, bool)
    guard[2:4, 1:4, 1:3] = True
    return guard


def test_protect_restores_every_guard_voxel_and_nothing_else():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 200, (6, 5, 4)).astype(np.uint8)
    output = np.zeros_like(original)
    guard = _guard()
    out = protect(original, output, guard)
    assert np.array_equal(out[guard], original[guard])
    assert not out[~guard].any()
    assert count_changed(original, out, guard).brain_voxels_changed == 0


def test_count_changed_counts_each_differing_voxel():
    original = np.ones((6, 5, 4), np.int16)
    output = original.copy()
    guard = _guard()
    idx = np.argwhere(guard)[:3]
    output[tuple(idx.T)] = 2
    output[0, 0, 0] = 9  # outside the guard: not counted
    report = count_changed(original, output, guard)
    assert report.brain_voxels_changed == 3
    assert report.guard_voxels == int(guard.sum())


def test_float_comparison_is_bitwise():
    original = np.zeros((6, 5, 4), np.float32)
    original[2, 2, 2] = np.nan
    same = original.copy()
    assert count_changed(original, same, _guard()).brain_voxels_changed == 0  # NaN == NaN as stored
    signed = original.copy()
    signed[3, 2, 1] = -0.0  # equal as numbers, different on disk
    assert count_changed(original, signed, _guard()).brain_voxels_changed == 1


def test_four_d_guard_applies_to_every_volume():
    original = np.arange(6 * 5 * 4 * 3, dtype=np.float32).reshape(6, 5, 4, 3)
    guard = _guard()
    out = protect(original, np.full_like(original, -1), guard)
    assert np.array_equal(out[guard], original[guard])
    report = count_changed(original, out, guard)
    assert report.brain_voxels_changed == 0 and report.guard_voxels == 3 * int(guard.sum())
    assert count_changed(original, np.zeros_like(original), guard).brain_voxels_changed == 3 * int(guard.sum())
