"""inputs: every bad input is refused (or warned about) with its catalogue code, in one line
that names the file; good images pass silently. Every bad file is made here, in code."""

from __future__ import annotations

import gzip
import json
import os

import nibabel as nib
import numpy as np
import pytest

from micanon import api, inputs
from micanon.inputs import CATALOGUE, ERROR, MIN_AXIS_VOXELS, WARNING, check_image

SHAPE = (16, 18, 12)


def _affine(degrees: float = 0.0, zooms=(1.2, 1.0, 2.0)) -> np.ndarray:
    """An oblique RAS affine: rotation about x by ``degrees``, voxel sizes ``zooms``."""
    a = np.deg2rad(degrees)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    out = np.eye(4)
    out[:3, :3] = rot * np.asarray(zooms)
    out[:3, 3] = (-10.0, 20.0, -5.0)
    return out


def _save(path, data, affine=None, dtype=None, qform_code=1, sform_code=1):
    """Write ``data`` with qform and sform both set from ``affine`` (as dcm2niix does)."""
    affine = _affine(12.0) if affine is None else affine
    img = nib.Nifti1Image(data, affine)
    if dtype is not None:
        img.set_data_dtype(dtype)
    img.set_qform(affine, qform_code)
    img.set_sform(affine, sform_code)
    img.to_filename(str(path))
    return path


def _noise(shape=SHAPE, dtype=np.float32):
    # Noise, so gzip cannot shrink the data to a few bytes and a cut lands inside it.
    return np.random.default_rng(0).uniform(0, 100, shape).astype(dtype)


def _patch_header(path, **fields):
    """Rewrite header fields of an uncompressed .nii in place (nibabel would 'fix' them)."""
    raw = bytearray(open(path, "rb").read())
    hdr = np.frombuffer(bytes(raw[:348]), dtype=nib.nifti1.header_dtype).copy()
    for name, value in fields.items():
        hdr[0][name] = value
    raw[:348] = hdr.tobytes()
    open(path, "wb").write(bytes(raw))
    return path


def _gzip(src, dst):
    dst.write_bytes(gzip.compress(src.read_bytes()))
    return dst


def _assert_issue(check, code, severity=ERROR):
    issues = check.errors if severity == ERROR else check.warnings
    codes = [issue["code"] for issue in issues]
    assert codes == [code], f"{check.path}: expected {code}, got {check.errors} / {check.warnings}"
    text = issues[0]["message"]
    assert "\n" not in text and "\r" not in text, text
    assert text.startswith(f"{check.path}: "), text
    return text


# -- the catalogue ---------------------------------------------------------------------------


def test_catalogue_entries_are_one_line_and_complete():
    assert len(CATALOGUE) == len({p.code for p in CATALOGUE.values()})
    for code, problem in CATALOGUE.items():
        assert code == problem.code and code.isupper()
        assert problem.severity in (ERROR, WARNING)
        assert problem.template.startswith("{path}: ") and "\n" not in problem.template
        assert ";" in problem.template, f"{code}: says what is wrong and what to do"
        values = {name: 1 for name in problem.fields}
        text = inputs.message(code, "/data/sub-01_T1w.nii.gz", **values)["message"]
        assert "/data/sub-01_T1w.nii.gz" in text and "{" not in text


def test_message_squeezes_library_words_to_one_line():
    out = inputs.message("HEADER_UNREADABLE", "/x/a\nb.nii", detail="line one\n  line two")
    assert out["message"].splitlines() == [out["message"]]
    assert "line one line two" in out["message"]


# -- good images -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint8])
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_good_3d_images_pass_silently(tmp_path, dtype, suffix):
    # float data stored as int16/uint8 gets a real scl_slope/scl_inter from nibabel.
    path = _save(tmp_path / f"sub-01_T1w{suffix}", _noise() * 3.7 - 20, dtype=dtype)
    check = check_image(path)
    assert check.ok and check.errors == [] and check.warnings == [], check
    facts = check.facts
    assert facts["shape"] == list(SHAPE) and facts["volumes"] == 1
    assert facts["dtype"] == np.dtype(dtype).name and facts["affine_source"] == "sform"
    assert facts["zooms"] == pytest.approx([1.2, 1.0, 2.0])
    assert facts["non_finite"] == 0 and facts["compressed"] == suffix.endswith(".gz")
    if dtype != np.float32:
        slope = float(nib.load(str(path)).dataobj.slope)
        assert slope not in (0.0, 1.0), "precondition: the image carries scaling"


def test_sform_only_is_normal_and_a_trailing_singleton_is_3d(tmp_path):
    path = _save(tmp_path / "a_T1w.nii.gz", _noise(SHAPE + (1,)), qform_code=0, sform_code=2)
    check = check_image(path)
    assert check.ok and check.warnings == [], check
    assert check.facts["volumes"] == 1 and check.facts["shape"] == list(SHAPE) + [1]


def test_sheared_sform_close_to_its_qform_passes(tmp_path):
    affine = _affine(7.0)
    affine[2, 0] += 0.01  # a small shear the quaternion qform cannot hold
    check = check_image(_save(tmp_path / "a_T1w.nii", _noise(), affine=affine))
    assert check.ok and check.warnings == [], check


def test_big_endian_image_passes(tmp_path):
    img = nib.Nifti1Image(_noise(), _affine(), header=nib.Nifti1Header(endianness=">"))
    img.to_filename(str(tmp_path / "be_T1w.nii"))
    check = check_image(tmp_path / "be_T1w.nii")
    assert check.ok and check.warnings == [], check


def test_nifti2_passes(tmp_path):
    img = nib.Nifti2Image(_noise(), _affine())
    img.to_filename(str(tmp_path / "n2_T1w.nii.gz"))
    check = check_image(tmp_path / "n2_T1w.nii.gz")
    assert check.ok and check.facts["format"] == "nifti2", check


# -- not a readable NIfTI --------------------------------------------------------------------


def test_missing_file(tmp_path):
    text = _assert_issue(check_image(tmp_path / "none_T1w.nii.gz"), "INPUT_MISSING")
    assert "no such file" in text


def test_folder_is_unreadable(tmp_path):
    (tmp_path / "dir_T1w.nii.gz").mkdir()
    _assert_issue(check_image(tmp_path / "dir_T1w.nii.gz"), "INPUT_UNREADABLE")


def test_other_extension(tmp_path):
    (tmp_path / "a_T1w.mgz").write_bytes(b"\x00" * 400)
    _assert_issue(check_image(tmp_path / "a_T1w.mgz"), "BAD_EXTENSION")


def test_plain_file_named_nii_gz(tmp_path):
    plain = _save(tmp_path / "plain.nii", _noise())
    os.rename(plain, tmp_path / "plain_T1w.nii.gz")
    text = _assert_issue(check_image(tmp_path / "plain_T1w.nii.gz"), "NOT_GZIP")
    assert "rename" in text


def test_gzip_named_nii(tmp_path):
    packed = _save(tmp_path / "packed.nii.gz", _noise())
    os.rename(packed, tmp_path / "packed_T1w.nii")
    _assert_issue(check_image(tmp_path / "packed_T1w.nii"), "UNEXPECTED_GZIP")


def test_bad_magic(tmp_path):
    path = _save(tmp_path / "magic_T1w.nii", _noise())
    raw = bytearray(path.read_bytes())
    raw[344:348] = b"abc\x00"
    path.write_bytes(bytes(raw))
    _assert_issue(check_image(path), "BAD_MAGIC")
    (tmp_path / "text_T1w.nii").write_text("this is not an image\n" * 40)
    _assert_issue(check_image(tmp_path / "text_T1w.nii"), "BAD_MAGIC")


def test_nifti_pair_header(tmp_path):
    nib.Nifti1Pair(_noise(), _affine()).to_filename(str(tmp_path / "pair.hdr"))
    os.rename(tmp_path / "pair.hdr", tmp_path / "pair_T1w.nii")
    _assert_issue(check_image(tmp_path / "pair_T1w.nii"), "NIFTI_PAIR")


def test_truncated_gzip_data(tmp_path):
    path = _save(tmp_path / "cut_T1w.nii.gz", _noise())
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * 0.7)])
    text = _assert_issue(check_image(path), "TRUNCATED")
    assert "incomplete" in text


def test_gzip_cut_inside_the_header(tmp_path):
    path = _save(tmp_path / "cut_T1w.nii.gz", _noise())
    path.write_bytes(path.read_bytes()[:40])
    _assert_issue(check_image(path), "TRUNCATED")


def test_truncated_uncompressed_file(tmp_path):
    path = _save(tmp_path / "cut_T1w.nii", _noise(dtype=np.int16), dtype=np.int16)
    path.write_bytes(path.read_bytes()[:-100])
    text = _assert_issue(check_image(path), "TRUNCATED")
    assert "bytes" in text


def test_gzip_crc_damage(tmp_path):
    path = _save(tmp_path / "crc_T1w.nii.gz", _noise())
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path.write_bytes(bytes(raw))
    _assert_issue(check_image(path), "CORRUPT_DATA")


# -- dimensions and data type ----------------------------------------------------------------


def test_2d_slice_is_refused(tmp_path):
    path = _save(tmp_path / "slice_T1w.nii.gz", _noise((64, 64)))
    text = _assert_issue(check_image(path), "TOO_FEW_DIMENSIONS")
    assert "2D" in text and "64x64" in text


def test_thin_slab_is_refused(tmp_path):
    path = _save(tmp_path / "slab_T1w.nii.gz", _noise((64, 64, 1)))
    text = _assert_issue(check_image(path), "AXIS_TOO_SMALL")
    assert f"at least {MIN_AXIS_VOXELS}" in text and "axis 2" in text


@pytest.mark.parametrize("dtype", [np.complex64, "RGB", "RGBA"])
def test_unsupported_dtypes(tmp_path, dtype):
    if dtype in ("RGB", "RGBA"):
        fields = [(c, "u1") for c in dtype]
        data = np.zeros(SHAPE, dtype=fields)
    else:
        data = _noise().astype(dtype)
    path = tmp_path / f"odd_{np.dtype(data.dtype).kind}_T1w.nii.gz"
    nib.Nifti1Image(data, _affine()).to_filename(str(path))
    text = _assert_issue(check_image(path), "UNSUPPORTED_DTYPE")
    assert (dtype if isinstance(dtype, str) else "complex64") in text


# -- values ----------------------------------------------------------------------------------


def test_nan_and_inf_are_counted_and_refused(tmp_path):
    data = _noise()
    data[1, 2, 3] = np.nan
    data[4, 5, 6] = np.nan
    data[7, 8, 9] = -np.inf
    path = _save(tmp_path / "nan_T1w.nii.gz", data)
    check = check_image(path)
    text = _assert_issue(check, "NON_FINITE")
    assert "3 voxel(s)" in text and "2 NaN" in text and "1 inf" in text and "refuses" in text
    assert check.facts["non_finite"] == 3


def test_inf_only_in_uncompressed_file(tmp_path):
    data = _noise()
    data[0, 0, 0] = np.inf
    _assert_issue(check_image(_save(tmp_path / "inf_T1w.nii", data)), "NON_FINITE")


def test_non_finite_counted_across_chunks_and_volumes(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "CHUNK_BYTES", 1000)  # many chunks per volume
    data = _noise(SHAPE + (3,))
    data[0, 0, 0, 0] = np.nan
    data[-1, -1, -1, 2] = np.nan
    data[5, 5, 5, 2] = np.inf
    check = check_image(_save(tmp_path / "bold.nii.gz", data))
    text = _assert_issue(check, "NON_FINITE")
    assert "3 voxel(s)" in text and "in 2 volume(s)" in text
    assert [w["code"] for w in check.warnings] == ["FOUR_D"]


# -- geometry --------------------------------------------------------------------------------


def test_4d_is_a_warning(tmp_path):
    check = check_image(_save(tmp_path / "multi_T2w.nii.gz", _noise(SHAPE + (4,))))
    text = _assert_issue(check, "FOUR_D", WARNING)
    assert check.ok and check.facts["volumes"] == 4 and "4 volumes" in text


def test_qform_sform_40_degrees_apart(tmp_path):
    data = _noise()
    img = nib.Nifti1Image(data, _affine(0.0))
    img.set_qform(_affine(0.0), 1)
    img.set_sform(_affine(40.0), 2)
    img.to_filename(str(tmp_path / "twist_T1w.nii.gz"))
    check = check_image(tmp_path / "twist_T1w.nii.gz")
    text = _assert_issue(check, "QFORM_SFORM_DISAGREE", WARNING)
    assert check.ok and "40.0 degrees" in text and "uses the sform" in text


def test_qform_sform_shifted(tmp_path):
    moved = _affine(12.0)
    moved[:3, 3] += (0.0, 3.0, 0.0)
    img = nib.Nifti1Image(_noise(), moved)
    img.set_qform(_affine(12.0), 1)
    img.set_sform(moved, 1)
    img.to_filename(str(tmp_path / "shift_T1w.nii"))
    text = _assert_issue(check_image(tmp_path / "shift_T1w.nii"), "QFORM_SFORM_DISAGREE", WARNING)
    assert "0.0 degrees" in text and "3.0 mm" in text


def test_no_orientation_is_a_warning(tmp_path):
    path = _save(tmp_path / "bare_T1w.nii", _noise(), qform_code=0, sform_code=0)
    check = check_image(path)
    _assert_issue(check, "NO_ORIENTATION", WARNING)
    assert check.facts["affine_source"] == "none"


def test_zero_voxel_size(tmp_path):
    # nibabel would rewrite pixdim from the affine on save (and "fix" it on load): patch bytes.
    path = _patch_header(_save(tmp_path / "flat.nii", _noise(), qform_code=1, sform_code=0),
                         pixdim=[1, 1.0, 0.0, 1.0, 1, 0, 0, 0])
    text = _assert_issue(check_image(path), "ZERO_VOXEL_SIZE")
    assert "1 x 0 x 1" in text
    _assert_issue(check_image(_gzip(path, tmp_path / "flat_T1w.nii.gz")), "ZERO_VOXEL_SIZE")


def test_singular_and_non_finite_affine(tmp_path):
    singular = np.array([[1.0, 1.0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    path = tmp_path / "sing_T1w.nii.gz"
    img = nib.Nifti1Image(_noise(), singular)
    img.to_filename(str(path))
    text = _assert_issue(check_image(path), "SINGULAR_AFFINE")
    assert "singular" in text and "sform" in text
    nan_path = _patch_header(_save(tmp_path / "nan_T1w.nii", _noise()), srow_y=[0, np.nan, 0, 0])
    assert "not finite" in _assert_issue(check_image(nan_path), "SINGULAR_AFFINE")


# -- the bridge ------------------------------------------------------------------------------


def test_check_inputs_over_the_bridge(tmp_path):
    good = _save(tmp_path / "good_T1w.nii.gz", _noise())
    bad = tmp_path / "bad_T1w.nii.gz"
    bad.write_bytes(b"not an image")
    missing = tmp_path / "gone_T1w.nii.gz"
    reply = json.loads(api.check_inputs(json.dumps({"paths": [str(good), str(bad), str(missing)]})))
    assert reply["ok"] is True
    images = reply["result"]["images"]
    assert [i["path"] for i in images] == [str(good), str(bad), str(missing)]
    assert [i["ok"] for i in images] == [True, False, False]
    assert images[1]["errors"][0]["code"] == "NOT_GZIP"
    assert images[2]["errors"][0]["code"] == "INPUT_MISSING"
    assert set(images[0]) == {"path", "ok", "errors", "warnings", "facts"}
    assert set(images[0]["facts"]) == set(inputs.FACT_KEYS) == set(images[2]["facts"])


def test_check_inputs_malformed_request_fails_the_reply():
    reply = json.loads(api.check_inputs(json.dumps({"paths": "one.nii"})))
    assert reply["ok"] is False and reply["error"]["kind"] == "bad_input"


# -- the rest of the catalogue ---------------------------------------------------------------


def test_5d_volumes_are_counted(tmp_path):
    check = check_image(_save(tmp_path / "five.nii.gz", _noise(SHAPE + (2, 3))))
    assert "6 volumes (shape 16x18x12x2x3)" in _assert_issue(check, "FOUR_D", WARNING)


def test_units_other_than_mm_are_a_warning(tmp_path):
    img = nib.Nifti1Image(_noise(), _affine())
    img.header.set_xyzt_units("meter", "sec")
    img.to_filename(str(tmp_path / "metres_T1w.nii.gz"))
    assert "metres" in _assert_issue(check_image(tmp_path / "metres_T1w.nii.gz"), "SPATIAL_UNITS", WARNING)


@pytest.mark.parametrize("fields, words", [({"vox_offset": 0.0}, "vox_offset"), ({"dim": [9] + [16] * 7}, "dim[0]")])
def test_impossible_header_fields(tmp_path, fields, words):
    path = _patch_header(_save(tmp_path / "odd_T1w.nii", _noise()), **fields)
    assert words in _assert_issue(check_image(path), "HEADER_UNREADABLE")


def test_a_failing_check_is_a_per_image_error(tmp_path, monkeypatch):
    def broken(check, state):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(inputs, "_check_data", broken)
    text = _assert_issue(check_image(_save(tmp_path / "a_T1w.nii.gz", _noise())), "CHECK_FAILED")
    assert "RuntimeError: boom second line" in text
