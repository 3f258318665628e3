"""grid's morphology in millimetres: the fast paths give exactly what scipy's distance transform gives."""

import numpy as np
import pytest
from scipy import ndimage

from micanon.space import grid


def _blobs(shape, seed):
    """A few random balls and single voxels: curved and sharp edges, several components."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    idx = np.indices(shape)
    for _ in range(4):
        centre = rng.uniform(0, shape)
        radius = rng.uniform(2, 7)
        mask |= sum((i - c) ** 2 for i, c in zip(idx, centre)) <= radius ** 2
    mask[tuple(rng.integers(0, n, 20) for n in shape)] = True
    return mask


ZOOMS = [(1.0, 1.0, 1.0), (0.88, 0.88, 0.88), (0.858, 0.859, 2.4), (0.52, 0.52, 0.65), (2.0, 1.0, 3.0)]


@pytest.mark.parametrize("zooms", ZOOMS)
@pytest.mark.parametrize("mm", [0.5, 2.0, 4.0, 5.0, 16.0])
def test_dilate_mm_is_the_distance_threshold(zooms, mm):
    mask = _blobs((40, 36, 30), seed=int(mm * 10) + len(str(zooms)))
    expected = ndimage.distance_transform_edt(~mask, sampling=zooms) <= mm
    assert np.array_equal(grid.dilate_mm(mask, zooms, mm), expected)


@pytest.mark.parametrize("zooms", ZOOMS)
def test_edt_mm_is_scipys_bit_for_bit(zooms):
    mask = _blobs((33, 41, 27), seed=3)
    for inside in (mask, ~mask):
        ours = grid.edt_mm(inside, zooms)
        assert ours.dtype == np.float64
        assert ours.tobytes() == ndimage.distance_transform_edt(inside, sampling=zooms).tobytes()


def test_distance_inside_mm_caps_scipys_distance():
    mask = _blobs((30, 30, 30), seed=5)
    expected = np.minimum(ndimage.distance_transform_edt(mask, sampling=(0.9, 1.1, 2.0)), 3.0).astype(np.float32)
    assert grid.distance_inside_mm(mask, (0.9, 1.1, 2.0), 3.0).tobytes() == expected.tobytes()


def test_dilate_mm_edges():
    empty = np.zeros((5, 5, 5), bool)
    assert not grid.dilate_mm(empty, (1, 1, 1), 3.0).any()
    one = empty.copy()
    one[0, 0, 0] = True  # at the grid's corner: the ball is cut by the grid, not wrapped
    grown = grid.dilate_mm(one, (1, 1, 1), 1.0)
    assert grown.sum() == 4 and grown[1, 0, 0] and grown[0, 1, 0] and grown[0, 0, 1] and not grown[4, 0, 0]
    assert np.array_equal(grid.dilate_mm(one, (1, 1, 1), 0.0), one)


@pytest.mark.parametrize("order", [0, 1])
def test_resample_reads_a_mask_as_its_float32_copy(order):
    mask = _blobs((30, 34, 28), seed=7)
    affine = np.diag([1.0, 0.98, 0.98, 1.0])
    target = np.array([[0.0, -0.9, 0.1, 30.0], [0.85, 0.0, 0.0, -2.0], [0.05, 0.0, 2.4, 1.0], [0, 0, 0, 1]])
    move = np.eye(4)
    move[:3, 3] = (0.3, -1.7, 0.45)
    for cval in (0.0, 1.0):
        copy = grid.resample(mask.astype(np.float32), affine, (33, 31, 12), target, move, order=order, cval=cval)
        assert copy.dtype == np.float32
        for same in (mask, mask.astype(np.uint8), mask.astype(np.int16)):
            assert grid.resample(same, affine, (33, 31, 12), target, move, order=order, cval=cval).tobytes() == copy.tobytes()
    values = np.random.default_rng(1).normal(size=mask.shape)  # float64 is read through float32, as before
    assert grid.resample(values, affine, (9, 9, 9), affine).tobytes() == grid.resample(values.astype(np.float32), affine, (9, 9, 9), affine).tobytes()


def test_distance_outside_a_mask_is_exact_within_its_cap_and_capped_beyond():
    mask = np.zeros((60, 70, 50), bool)
    mask[15:35, 40:65, 10:30] = True
    zooms = (0.9, 0.9, 1.2)
    full = grid.edt_mm(~mask, zooms)
    capped = grid.distance_outside_mm(mask, zooms, 8.0)
    assert np.array_equal(capped, np.minimum(full, 8.0).astype(np.float32))
    assert (grid.distance_outside_mm(np.zeros((4, 4, 4), bool), zooms, 8.0) == 8.0).all()
