"""session: one synthetic session end to end (registration included), then person A if present.

Checks the properties that matter: the true brain is bit-for-bit unchanged in every written
file, the face is changed, the header and stored type are kept, errors stay per image, and the
same inputs give the same bytes.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import (
    atlas_from_subject,
    grid_points,
    head_intensity,
    make_subject,
    person_a_anat,
    real_atlas,
    save_subject,
)

from micanon.anonymize import masks as atlas_masks
from micanon.anonymize import warp as warps
from micanon.anonymize import methods as face_methods
from micanon import session as session_module
from micanon.io import read_image
from micanon.session import anonymize_session

METHODS = ["deface", "reface", "warpface"]
# What the run configuration sends (src/config.ts owns the defaults; the engine has none).
SETTINGS = {"dilate": 6.0, "seed": 1}


def _disk_header(path):
    with nib.openers.ImageOpener(str(path)) as stream:
        return nib.Nifti1Header.from_fileobj(stream)


def _outputs(folder: Path, inputs: list[Path], methods=METHODS) -> dict[str, dict[str, str]]:
    return {str(p): {m: str(folder / f"{p.name.split('.')[0]}_desc-{m}.nii.gz") for m in methods} for p in inputs}


@pytest.fixture(scope="module")
def session(tmp_path_factory, synthetic_atlas):
    """Run one synthetic session: int16-scaled T1w, float32 T2w, 4D uint8, a T1map via the T2w, a missing file."""
    root = tmp_path_factory.mktemp("session")
    data, affine, parts = make_subject()
    t1w = save_subject(root / "sub-1_T1w.nii.gz", data / 37.0, affine, np.int16)  # fractional: forces scl_slope
    # T2w-like contrast on a thick-slice oblique grid of its own, in the same scanner space
    t2_affine = affine.copy()
    t2_affine[:3, :3] = affine[:3, :3] @ np.diag([1.0, 1.0, 1.5])
    t2_shape = (data.shape[0], data.shape[1], int(data.shape[2] / 1.5))
    pts = grid_points(t2_shape, t2_affine)
    t2 = np.where(head_intensity(pts) > 0, 150.0 - head_intensity(pts), 0.0).astype(np.float32)
    t2w = save_subject(root / "sub-1_T2w.nii.gz", t2, t2_affine, np.float32)
    four_d = np.stack([data, data * 0.5], axis=-1)
    mt = save_subject(root / "sub-1_MTw.nii.gz", np.clip(four_d, 0, 255), affine, np.uint8)
    t1map = save_subject(root / "sub-1_T1map.nii.gz", t2 * 13.7 + (t2 > 0) * 0.31, t2_affine, np.float32)
    missing = root / "sub-1_FLAIR.nii.gz"
    inputs = [t1w, t2w, mt, t1map, missing]
    outputs = _outputs(root, inputs)
    messages: list[str] = []
    start = time.perf_counter()
    result = anonymize_session(
        str(t1w),
        [{"path": str(t2w), "register_via": None}, {"path": str(mt), "register_via": None},
         {"path": str(t1map), "register_via": str(t2w)}, {"path": str(missing), "register_via": None}],
        METHODS, synthetic_atlas, outputs, work_dir=str(root / "work"), keep_work=True, log=messages.append, **SETTINGS,
    )
    print(f"synthetic session: {time.perf_counter() - start:.1f} s")
    return {"result": result, "outputs": outputs, "parts": parts, "t1w": t1w, "t2w": t2w, "mt": mt,
            "t1map": t1map, "missing": missing, "root": root, "log": messages, "seconds": time.perf_counter() - start}


def test_result_is_json_and_complete(session):
    result = session["result"]
    json.dumps(result)
    assert result["reference"]["registration"]["flag"] == "ok"
    done = [r for r in result["images"] if "error" not in r]
    assert len(done) == 4 * len(METHODS)
    assert all(r["brain_voxels_changed"] == 0 and r["guard_voxels"] > 0 for r in done)
    assert session["log"], "progress lines are reported"


def test_error_in_one_image_is_recorded_and_the_rest_go_on(session):
    errors = [r for r in session["result"]["images"] if "error" in r]
    assert {r["input"] for r in errors} == {str(session["missing"])}
    assert {r["method"] for r in errors} == set(METHODS)
    assert all("\n" not in r["error"] and "FLAIR" in r["error"] for r in errors)


def test_registration_recovers_the_known_affine(session):
    xfm = json.loads((session["root"] / "work" / "T1w_xfm.json").read_text())
    found = np.asarray(xfm["image_to_atlas"])
    head = np.array([[x, y, z, 1.0] for x in (-50, 50) for y in (-60, 80) for z in (-40, 60)])
    error = np.linalg.norm((head @ found.T - head @ atlas_from_subject().T)[:, :3], axis=1)
    assert error.max() < 3.0, f"registration off by up to {error.max():.1f} mm"


def test_true_brain_is_bit_for_bit_unchanged_and_face_changed(session):
    parts = session["parts"]
    brain = parts["brain"] | parts["ventricle"]
    face = parts["nose"]
    source = np.asarray(nib.load(session["t1w"]).dataobj.get_unscaled())
    for method, path in session["outputs"][str(session["t1w"])].items():
        out = np.asarray(nib.load(path).dataobj.get_unscaled())
        assert np.array_equal(out[brain], source[brain]), method
        assert (out[face] != source[face]).mean() > 0.5, f"{method} left the nose as it was"


def test_the_kept_face_warp_moves_the_face_and_never_folds(session):
    warp = nib.load(session["root"] / "work" / "T1w_desc-faceWarp_xfm.nii.gz")
    field = np.asarray(warp.dataobj, np.float32)
    assert np.sqrt((field ** 2).sum(-1)).max() > 1.0, "the warp moves the face"
    assert warps.jacobian_determinant(field, warp.affine).min() > 0
    assert any("min Jacobian" in line for line in session["log"])
    # Every warpface record carries the figures of the one warp they share (reach, smallest Jacobian).
    summaries = [r["warp"] for r in session["result"]["images"] if r.get("method") == "warpface" and "error" not in r]
    assert summaries and all(s == summaries[0] for s in summaries)
    assert summaries[0]["max_mm"] == pytest.approx(np.sqrt((field ** 2).sum(-1)).max(), abs=0.01)
    assert summaries[0]["min_jacobian"] == pytest.approx(warps.jacobian_determinant(field, warp.affine).min(), abs=0.002)
    assert not any("warp" in r for r in session["result"]["images"] if r.get("method") != "warpface")


def test_headers_dtypes_and_scaling_are_kept(session):
    for source, wanted in session["outputs"].items():
        if source == str(session["missing"]):
            continue
        a = nib.load(source)
        ha = _disk_header(source)
        for method, path in wanted.items():
            b = nib.load(path)
            hb = _disk_header(path)
            assert b.shape == a.shape and b.get_data_dtype() == a.get_data_dtype()
            assert np.array_equal(b.affine, a.affine)
            assert (int(hb["qform_code"]), int(hb["sform_code"])) == (int(ha["qform_code"]), int(ha["sform_code"]))
            assert np.array_equal(hb["srow_x"], ha["srow_x"]) and hb["quatern_b"] == ha["quatern_b"]
            assert (hb["scl_slope"], hb["scl_inter"]) == (ha["scl_slope"], ha["scl_inter"]) or (
                np.isnan(ha["scl_slope"]) and np.isnan(hb["scl_slope"]))
            assert hb["descrip"].tobytes().rstrip(b"\0").decode() == f"micanon 0.1.0 {method}"
    slope = float(_disk_header(session["t1w"])["scl_slope"])
    assert np.isfinite(slope) and slope not in (0.0, 1.0), "precondition: the T1w is a scaled int16"


def test_float_images_stay_float_and_partner_registration_is_shared(session):
    records = [r for r in session["result"]["images"] if r["input"] == str(session["t1map"]) and "error" not in r]
    assert records and all(r["dtype"] == "float32" for r in records)
    source = np.asarray(nib.load(session["t1map"]).dataobj)
    for method in ("reface", "warpface"):
        out = np.asarray(nib.load(session["outputs"][str(session["t1map"])][method]).dataobj)
        assert out.dtype == np.float32
        changed = out[out != source]
        assert changed.size and not np.array_equal(changed, np.round(changed)), f"{method} truncated floats"
    via = [r["registration"] for r in session["result"]["images"] if r["input"] == str(session["t1map"])]
    t2 = [r["registration"] for r in session["result"]["images"] if r["input"] == str(session["t2w"])]
    assert via[0]["value"] == t2[0]["value"]


def test_four_d_every_volume_gets_the_same_masks(session):
    source = np.asarray(nib.load(session["mt"]).dataobj)
    guard = read_image(session["root"] / "work" / "sub-1_MTw_desc-brainGuard_mask.nii.gz").raw > 0
    face = read_image(session["root"] / "work" / "sub-1_MTw_desc-faceRoi_mask.nii.gz").raw > 0
    for path in session["outputs"][str(session["mt"])].values():
        out = np.asarray(nib.load(path).dataobj)
        assert out.shape == source.shape
        for v in range(2):
            assert np.array_equal(out[..., v][guard], source[..., v][guard])
            assert (out[..., v][face] != source[..., v][face]).any()


def test_reference_failure_raises_one_line_value_error(tmp_path, synthetic_atlas):
    missing = tmp_path / "sub-2_T1w.nii.gz"
    with pytest.raises(ValueError, match="sub-2_T1w.nii.gz"):
        anonymize_session(str(missing), [], ["deface"], synthetic_atlas, _outputs(tmp_path, [missing], ["deface"]),
                          work_dir=str(tmp_path / "work"), **SETTINGS)


def test_a_face_warp_that_cannot_be_made_is_an_engine_failure_not_bad_input(monkeypatch, tmp_path, synthetic_atlas):
    """The image was read and fitted: the bridge must not call it bad input ("check the file")."""
    def folds(*args, **kwargs):
        raise ValueError("the face warp folds even after 4 smoothings and 4 halvings")

    monkeypatch.setattr(session_module.warps, "face_warp", folds)
    data, affine, _ = make_subject()
    t1w = save_subject(tmp_path / "sub-1_T1w.nii.gz", data, affine, np.float32)
    with pytest.raises(RuntimeError, match="sub-1_T1w.nii.gz: face warp failed .*halvings") as raised:
        anonymize_session(str(t1w), [], ["warpface"], synthetic_atlas, _outputs(tmp_path, [t1w], ["warpface"]),
                          work_dir=str(tmp_path / "work"), **SETTINGS)
    assert not isinstance(raised.value, ValueError)


def test_a_poor_reference_fit_makes_every_image_of_the_session_poor(monkeypatch, tmp_path, synthetic_atlas):
    """Every image's masks go through the reference's atlas fit: when QC must fail the
    reference's registration, it must fail theirs too, whatever their own fit to it says."""
    real = session_module.fit_check.judge

    def poor_fit(*args, **kwargs):
        return replace(real(*args, **kwargs), flag="poor", reason="planted: witnesses say poor")

    monkeypatch.setattr(session_module.fit_check, "judge", poor_fit)
    data, affine, _ = make_subject()
    t1w = save_subject(tmp_path / "sub-1_T1w.nii.gz", data, affine, np.float32)
    t2w = save_subject(tmp_path / "sub-1_T2w.nii.gz", np.where(data > 0, 150.0 - data, 0.0), affine, np.float32)
    result = anonymize_session(str(t1w), [{"path": str(t2w), "register_via": None}], ["deface"], synthetic_atlas,
                               _outputs(tmp_path, [t1w, t2w], ["deface"]), work_dir=str(tmp_path / "work"), **SETTINGS)
    t2_record = next(r for r in result["images"] if r["input"] == str(t2w))
    assert t2_record["registered"] and t2_record["registration"]["flag"] == "poor"
    assert t2_record["registration"]["metric"] == f"reference_{result['reference']['registration']['metric']}"


def test_other_images_are_fitted_while_the_brain_is_extracted(monkeypatch, tmp_path, synthetic_atlas):
    """ROBEX is the session's longest step: the reference's brain extraction starts before the
    atlas is read, and the other images' fits to the reference are done before the session waits
    for it (they do not need the subject's brain)."""
    events: list[str] = []
    real_extract_later, real_fit = session_module.native_brain.extract_later, session_module.register_to_t1w
    real_load = session_module.load_atlas_images

    class Watched:
        def __init__(self, future):
            self.future = future

        def result(self):
            events.append("brain awaited")
            return self.future.result()

    def extract_later(*args, **kwargs):
        events.append("brain started")
        return Watched(real_extract_later(*args, **kwargs))

    def fit(*args, **kwargs):
        events.append("other fitted")
        return real_fit(*args, **kwargs)

    def load(*args, **kwargs):
        events.append("atlas read")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(session_module.native_brain, "extract_later", extract_later)
    monkeypatch.setattr(session_module, "register_to_t1w", fit)
    monkeypatch.setattr(session_module, "load_atlas_images", load)
    data, affine, _ = make_subject()
    t1w = save_subject(tmp_path / "sub-1_T1w.nii.gz", data, affine, np.float32)
    t2w = save_subject(tmp_path / "sub-1_T2w.nii.gz", np.where(data > 0, 150.0 - data, 0.0), affine, np.float32)
    missing = tmp_path / "sub-1_FLAIR.nii.gz"
    result = anonymize_session(str(t1w), [{"path": str(t2w), "register_via": None}, {"path": str(missing), "register_via": None}],
                               ["deface"], synthetic_atlas, _outputs(tmp_path, [t1w, t2w, missing], ["deface"]),
                               work_dir=str(tmp_path / "work"), **SETTINGS)
    assert events == ["brain started", "atlas read", "other fitted", "brain awaited"]
    assert [r.get("error") is None for r in result["images"]] == [True, True, False]
    assert "sub-1_FLAIR.nii.gz" in result["images"][2]["error"]


def test_same_inputs_give_the_same_bytes(session, synthetic_atlas, tmp_path):
    t1w = session["t1w"]
    outputs = {str(t1w): {m: str(tmp_path / f"{m}.nii.gz") for m in ("deface", "warpface")}}
    anonymize_session(str(t1w), [], ["deface", "warpface"], synthetic_atlas, outputs, work_dir=str(tmp_path / "w"), **SETTINGS)
    for method, path in outputs[str(t1w)].items():
        assert Path(path).read_bytes() == Path(session["outputs"][str(t1w)][method]).read_bytes(), method


def test_remove_ears_blanks_the_ears_in_deface_only(session, synthetic_atlas, tmp_path):
    t1w = session["t1w"]
    outputs = {str(t1w): {"deface": str(tmp_path / "deface.nii.gz")}}
    result = anonymize_session(str(t1w), [], ["deface"], synthetic_atlas, outputs, work_dir=str(tmp_path / "w"),
                               remove_ears=True, **SETTINGS)
    assert result["images"][0]["brain_voxels_changed"] == 0
    before = read_image(str(t1w)).real(0)
    with_ears = read_image(outputs[str(t1w)]["deface"]).real(0)
    without = read_image(session["outputs"][str(t1w)]["deface"]).real(0)
    data, affine, parts = make_subject()
    pts = grid_points(data.shape, affine)
    ears = (np.abs(pts[..., 0]) > 66) & (np.abs(pts[..., 1]) < 10) & (np.abs(pts[..., 2]) < 10) & parts["head"]
    assert ears.sum() > 10
    # the plain deface keeps the sides of the head; --remove-ears blanks them, and nothing of the brain
    assert np.array_equal(without[ears], before[ears])
    assert (with_ears[ears] == 0).all()
    brain = parts["brain"] | parts["ventricle"]
    assert np.array_equal(with_ears[brain], before[brain])


# ----------------------------------------------------------------------------- person A


@pytest.mark.parametrize("method", METHODS)
def test_person_a(method, tmp_path):
    """All images of person A by one method with the built atlas: 0 brain voxels changed."""
    anat = person_a_anat()
    atlas = real_atlas()
    t1w = anat / "sub-A_ses-01_T1w.nii.gz"
    others = [anat / "sub-A_ses-01_PDw.nii.gz", anat / "sub-A_ses-01_angio.nii.gz"]
    outputs = _outputs(tmp_path, [t1w, *others], [method])
    start = time.perf_counter()
    result = anonymize_session(str(t1w), [{"path": str(p), "register_via": None} for p in others], [method], atlas,
                               outputs, work_dir=str(tmp_path / "work"), **SETTINGS)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"person A {method}: {seconds:.1f} s, peak RSS {peak_mb:.0f} MB")
    assert result["reference"]["registration"]["flag"] == "ok"
    assert len(result["images"]) == 3
    for record in result["images"]:
        assert "error" not in record, record
        assert record["brain_voxels_changed"] == 0 and record["guard_voxels"] > 100_000
    flags = {Path(r["input"]).name: (r["registered"], r["registration"]["flag"]) for r in result["images"]}
    assert flags["sub-A_ses-01_PDw.nii.gz"] == (True, "ok")
    # vessels in an empty field: nothing to register to the T1w, the scanner coordinates are kept
    assert flags["sub-A_ses-01_angio.nii.gz"] == (False, "scanner")
    source = read_image(t1w)
    out = read_image(outputs[str(t1w)][method])
    assert (out.raw != source.raw).sum() > 50_000, "the face must change"
