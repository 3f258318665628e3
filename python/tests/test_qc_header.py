"""The header check (micanon.qc.header): a kept header is a copied header, every difference named."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from micanon.io import read_image
from micanon.qc.header import header_check, header_differences, shape_text


@pytest.fixture
def stored_pair(tmp_path):
    """Write an int16 image with scaling, and a function writing a changed copy of it."""
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = [-20, -30, -10]
    data = np.arange(6 * 7 * 5, dtype=np.float32).reshape(6, 7, 5) / 3.0

    def write(name, change=lambda img: None, array=data):
        img = nib.Nifti1Image(array, affine)
        img.set_data_dtype(np.int16)
        img.set_qform(affine, 1)
        img.set_sform(affine, 1)
        change(img)
        path = tmp_path / name
        img.to_filename(str(path))
        return read_image(path)

    return write("input.nii.gz"), write


def test_a_copied_header_passes(stored_pair):
    before, write = stored_pair
    assert header_check(before, write("copy.nii.gz")) == {"pass": True, "differences": []}


def test_every_changed_field_is_named(stored_pair):
    before, write = stored_pair

    def qform_code_2(img):
        img.set_qform(img.affine, 2)

    def float_type(img):
        img.set_data_dtype(np.float32)

    def microns(img):
        img.header.set_xyzt_units("micron")

    assert header_differences(before, write("q.nii.gz", qform_code_2)) == ["qform_code 1 -> 2"]
    assert header_differences(before, write("f.nii.gz", float_type))[0] == "data type int16 -> float32"
    assert header_differences(before, write("u.nii.gz", microns)) == [f"units {'/'.join(before.header.get_xyzt_units())} -> micron/unknown"]
    smaller = write("s.nii.gz", array=np.zeros((6, 7, 4), np.float32))
    assert f"shape {shape_text((6, 7, 5))} -> {shape_text((6, 7, 4))}" in header_differences(before, smaller)
    check = header_check(before, write("q2.nii.gz", qform_code_2))
    assert check == {"pass": False, "differences": ["qform_code 1 -> 2"]}
