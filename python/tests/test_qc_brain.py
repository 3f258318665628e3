"""The brain check (micanon.qc.brain): re-counted bit for bit from the files, beside the engine's count."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from micanon.io import read_image
from micanon.qc.brain import brain_check, native_mask
from micanon.qc.request import Registration

OK = Registration("ncc", 0.9, "ok")
HARD = Registration("ncc", 0.9, "poor", {"hard": True, "reason": "the face ROI reaches 9 mm into the brain"})


@pytest.fixture
def images(tmp_path):
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    data = np.random.default_rng(0).integers(0, 1000, (10, 10, 10)).astype(np.int16)
    guard = np.zeros(data.shape, bool)
    guard[3:7, 3:7, 3:7] = True

    def write(name, array):
        path = tmp_path / name
        nib.Nifti1Image(array, affine).to_filename(str(path))
        return read_image(path)

    changed = data.copy()
    changed[5, 5, 5] += 1
    changed[0, 0, 0] += 1  # outside the guard: the face may change
    return write("in.nii.gz", data), write("same.nii.gz", data), write("changed.nii.gz", changed), guard


def test_a_changed_guard_voxel_fails_whatever_the_engine_counted(images):
    before, same, changed, guard = images
    assert brain_check(before, same, guard, 0, 64, OK) == {
        "value": 0, "guard_voxels": 64, "pass": True, "engine_value": 0, "rechecked": True}
    check = brain_check(before, changed, guard, 0, 64, OK)
    assert check["value"] == 1 and not check["pass"] and check["engine_value"] == 0


def test_without_a_guard_the_engine_count_stands_and_either_count_fails(images):
    before, same, _, guard = images
    assert brain_check(before, same, None, 3, 64, OK) == {
        "value": 3, "guard_voxels": 64, "pass": False, "engine_value": 3, "rechecked": False}
    assert not brain_check(before, same, guard, 2, 64, OK)["pass"]


def test_a_fit_that_put_the_face_roi_in_the_brain_fails_with_no_voxel_changed(images):
    before, same, _, guard = images
    check = brain_check(before, same, guard, 0, 64, HARD)
    assert check["value"] == 0 and not check["pass"]
    assert check["face_roi_in_brain"] == "the face ROI reaches 9 mm into the brain"


def test_a_mask_off_the_image_grid_is_refused(images, tmp_path):
    before, *_ = images
    path = tmp_path / "mask.nii.gz"
    nib.Nifti1Image(np.ones((10, 10, 9), np.uint8), np.eye(4)).to_filename(str(path))
    with pytest.raises(ValueError, match="brain guard is not on the grid"):
        native_mask(path, before, "brain guard")
