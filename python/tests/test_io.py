"""io: outputs keep the input's grid, header and stored values; only what we change changes."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from micanon.io import read_image, to_stored, write_like


def disk_header(path):
    """The header exactly as stored (nibabel's loaded header hides the scaling in the proxy)."""
    with nib.openers.ImageOpener(str(path)) as stream:
        return nib.Nifti1Header.from_fileobj(stream)


def _scaled_int16(path):
    data = np.linspace(-3.0, 7.0, 10 * 12 * 8, dtype=np.float32).reshape(10, 12, 8)
    affine = np.array([[0.0, -1.1, 0.1, 40], [0.9, 0.0, 0.0, -20], [0.0, 0.05, 2.4, 5], [0, 0, 0, 1]])
    img = nib.Nifti1Image(data, affine)
    img.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, 1)
    img.set_sform(affine, 4)
    img.header["aux_file"] = b"sub-A secret"
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"PatientName=Someone"))
    img.to_filename(str(path))
    return path


def test_int16_with_scaling_round_trips_bit_for_bit(tmp_path):
    src = _scaled_int16(tmp_path / "in.nii.gz")
    slope = float(disk_header(src)["scl_slope"])
    assert slope not in (0.0, 1.0) and np.isfinite(slope), "precondition: the input must carry a real scl_slope"
    image = read_image(src)
    assert image.raw.dtype == np.int16
    write_like(image, image.raw, tmp_path / "out.nii.gz", "micanon 0.1.0 deface")

    a, b = nib.load(src), nib.load(tmp_path / "out.nii.gz")
    assert np.array_equal(np.asarray(a.dataobj.get_unscaled()), np.asarray(b.dataobj.get_unscaled()))
    assert b.header.get_data_dtype() == np.int16
    ha, hb = disk_header(src), disk_header(tmp_path / "out.nii.gz")
    assert (hb["scl_slope"], hb["scl_inter"]) == (ha["scl_slope"], ha["scl_inter"])
    assert (b.dataobj.slope, b.dataobj.inter) == (a.dataobj.slope, a.dataobj.inter)
    assert np.array_equal(a.get_qform(), b.get_qform()) and np.array_equal(a.get_sform(), b.get_sform())
    assert (int(b.header["qform_code"]), int(b.header["sform_code"])) == (1, 4)
    assert b.header.get_xyzt_units() == ("mm", "sec")
    assert b.header["descrip"].tobytes().rstrip(b"\0") == b"micanon 0.1.0 deface"
    assert b.header["aux_file"].tobytes().rstrip(b"\0") == b""
    assert len(b.header.extensions) == 0


def test_float32_keeps_type_and_nans(tmp_path):
    data = np.random.default_rng(3).normal(size=(6, 7, 5)).astype(np.float32)
    data[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "f.nii")
    image = read_image(tmp_path / "f.nii")
    write_like(image, image.raw, tmp_path / "g.nii", "x")
    back = np.asarray(nib.load(tmp_path / "g.nii").dataobj)
    assert back.dtype == np.float32
    assert np.array_equal(back.view(np.uint32), data.view(np.uint32))  # NaN bits included


def test_four_d_round_trip(tmp_path):
    data = np.arange(4 * 5 * 6 * 3, dtype=np.uint8).reshape(4, 5, 6, 3)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "v.nii.gz")
    image = read_image(tmp_path / "v.nii.gz")
    assert image.volumes == 3 and image.shape3d == (4, 5, 6)
    assert np.array_equal(image.volume_raw(2), data[..., 2])
    write_like(image, image.raw, tmp_path / "w.nii.gz", "x")
    assert np.array_equal(np.asarray(nib.load(tmp_path / "w.nii.gz").dataobj), data)


def test_writes_are_reproducible(tmp_path):
    src = _scaled_int16(tmp_path / "in.nii.gz")
    image = read_image(src)
    write_like(image, image.raw, tmp_path / "a.nii.gz", "x")
    write_like(image, image.raw, tmp_path / "b.nii.gz", "x")
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "b.nii.gz").read_bytes()
    with gzip.open(tmp_path / "a.nii.gz") as stream:
        assert len(stream.read()) == 352 + image.raw.nbytes  # header + no extensions + data


def test_to_stored_unscales_rounds_and_clips(tmp_path):
    image = read_image(_scaled_int16(tmp_path / "in.nii.gz"))
    slope, inter = image.slope_inter()
    real = np.array([inter + 2.4 * slope, inter - 2.6 * slope, 1e12, -1e12], np.float32)
    assert to_stored(real, image).tolist() == [2, -3, 32767, -32768]


def test_refuses_wrong_shape(tmp_path):
    image = read_image(_scaled_int16(tmp_path / "in.nii.gz"))
    with pytest.raises(ValueError, match="shape"):
        write_like(image, image.raw[:-1], tmp_path / "o.nii.gz", "x")


def test_missing_and_unreadable_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "absent.nii.gz")
    (tmp_path / "bad.nii.gz").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.nii.gz"):
        read_image(tmp_path / "bad.nii.gz")
