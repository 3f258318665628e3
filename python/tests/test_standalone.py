"""Standalone QC (``micanon qc``): one image anonymized by any tool, alone or against its original.

The synthetic head (made in code, registered to the synthetic atlas) exercises the brain and
header checks: defaced by the pipeline's own functions, it keeps every brain voxel; copies with
brain voxels altered, another stored type, a moved affine or another grid must fail, with the
count or the difference named. The atlas template (the average head, whose face the CNN finds)
exercises the face rules; person A (skipped where absent) a real deface.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage as ndi

from conftest import make_subject, person_a_anat, real_atlas, save_subject
from micanon import api, face
from micanon.io import read_image, write_like
from micanon.session import anonymize_session
from micanon.standalone import check_image

NOT_CHECKED = {"verdict": "not_checked", "pass": None, "detail": "not checked: no --original"}


def run_check(image: Path, original: Path | None, atlas, out: Path, method: str = "deface") -> dict:
    """check_image with figures under ``out``; every figure the record names must exist there."""
    record = check_image(image, original, method, atlas, output_dir=out, figures_dir=out / "sub-x" / "figures",
                         subject="x", session=None, seed=1)
    for group in ("input", "output", "slices"):
        for relative in record["renders"][group].values():
            assert (out / relative).is_file(), relative
    assert json.loads(json.dumps(record)) == record  # it crosses the bridge as JSON
    return record


def pipeline_deface(original: Path, atlas, folder: Path) -> Path:
    """The pipeline's own deface of ``original`` (its registration, masks and guard)."""
    defaced = folder / f"{original.name.split('.')[0]}_desc-defaced.nii.gz"
    anonymize_session(str(original), [], ["deface"], atlas, {str(original): {"deface": str(defaced)}}, work_dir=str(folder / "work"), dilate=6, seed=1)
    return defaced


# ----------------------------------------------------------------------------- synthetic head


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, synthetic_atlas):
    """The synthetic T1w (int16 with scaling, 3 mm), its pipeline deface and its true parts."""
    root = tmp_path_factory.mktemp("standalone")
    data, affine, parts = make_subject()
    original = save_subject(root / "sub-1_T1w.nii.gz", data / 37.0, affine, np.int16)
    return {"root": root, "original": original, "defaced": pipeline_deface(original, synthetic_atlas, root), "parts": parts}


def test_a_pipeline_deface_keeps_every_brain_voxel_and_the_header(synthetic, synthetic_atlas, tmp_path):
    record = run_check(synthetic["defaced"], synthetic["original"], synthetic_atlas, tmp_path)
    brain = record["checks"]["brain_voxels_changed"]
    true_brain = int((synthetic["parts"]["brain"] | synthetic["parts"]["ventricle"]).sum())
    assert brain["pass"] and brain["value"] == 0 and brain["rechecked"]
    assert brain["guard_voxels"] > true_brain  # the guard is the atlas brain grown 4 mm
    assert record["checks"]["header"] == {"pass": True, "differences": []}
    assert record["checks"]["registration"]["flag"] == "ok" and record["checks"]["registration"]["metric"] == "ncc"
    assert record["status"] == "PASS", record["reason"]
    assert record["output"] == synthetic["defaced"].name and record["input"] == synthetic["original"].name
    assert record["standalone"]["original"] == str(synthetic["original"])
    assert set(record["renders"]["slices"]) == {"input_sagittal", "output_sagittal", "masks_overlay", "registration_overlay"}


def test_altered_brain_voxels_fail_with_their_count_and_face_voxels_do_not_count(synthetic, synthetic_atlas, tmp_path):
    stored = read_image(synthetic["defaced"])
    raw = stored.raw.copy()
    deep = np.argwhere(ndi.binary_erosion(synthetic["parts"]["brain"], iterations=3))
    for ijk in deep[:: len(deep) // 7][:7]:  # 7 voxels spread through the true brain
        raw[tuple(ijk)] += 5
    nose = np.argwhere(synthetic["parts"]["nose"])
    raw[tuple(nose[len(nose) // 2])] += 5  # far from the brain: not the brain check's business
    altered = tmp_path / "altered.nii.gz"
    write_like(stored, raw, altered, "micanon test: brain altered")
    record = run_check(altered, synthetic["original"], synthetic_atlas, tmp_path)
    assert record["checks"]["brain_voxels_changed"]["value"] == 7
    assert record["status"] == "FAILED" and record["reason"] == "7 brain voxels changed"
    assert record["checks"]["header"]["pass"]


def test_another_stored_type_fails_the_header_and_says_the_values_survived(synthetic, synthetic_atlas, tmp_path):
    img = nib.load(str(synthetic["defaced"]))
    as_float = nib.Nifti1Image(np.asarray(img.dataobj, np.float32), img.affine, img.header.copy())
    as_float.set_data_dtype(np.float32)
    as_float.header.set_slope_inter(1.0, 0.0)
    path = tmp_path / "float.nii.gz"
    as_float.to_filename(str(path))
    record = run_check(path, synthetic["original"], synthetic_atlas, tmp_path)
    assert not record["checks"]["header"]["pass"]
    assert "data type int16 -> float32" in record["checks"]["header"]["differences"]
    brain = record["checks"]["brain_voxels_changed"]
    assert not brain["pass"] and "in real values 0 guard voxels differ" in brain["detail"]
    assert record["status"] == "FAILED" and "header changed" in record["reason"]


def test_another_grid_fails_the_header_and_never_passes_the_brain(synthetic, synthetic_atlas, tmp_path):
    img = nib.load(str(synthetic["defaced"]))
    # A tool that resampled: another shape; every guard voxel counts as changed, and the record says why.
    data = np.asarray(img.dataobj, np.float32)[::2, ::2, ::2]
    coarse = img.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    resampled = save_subject(tmp_path / "resampled.nii.gz", data, coarse, np.int16)
    record = run_check(resampled, synthetic["original"], synthetic_atlas, tmp_path)
    brain = record["checks"]["brain_voxels_changed"]
    assert not record["checks"]["header"]["pass"] and record["status"] == "FAILED"
    assert not brain["pass"] and brain["value"] == brain["guard_voxels"] > 0
    assert "not on the original's grid" in brain["detail"]
    assert record["checks"]["face"]["verdict"] == "inconclusive"


def test_an_image_alone_reports_brain_header_and_identity_as_not_checked(synthetic, synthetic_atlas, tmp_path):
    record = run_check(synthetic["defaced"], None, synthetic_atlas, tmp_path, method="reface")
    checks = record["checks"]
    assert checks["brain_voxels_changed"] == NOT_CHECKED and checks["header"] == NOT_CHECKED
    assert checks["identity"] == NOT_CHECKED
    assert checks["face"]["verdict"] == "not_checked" and checks["face"]["pass"] is None
    assert checks["face_views_input"] == {} and len(checks["face_views_output"]) == 9
    assert record["input"] is None and record["renders"]["input"] == {}
    assert set(record["renders"]["slices"]) == {"output_sagittal"}
    assert record["standalone"]["registered"] == synthetic["defaced"].name


def test_with_a_staging_folder_the_figures_are_drawn_there_and_cited_where_they_will_be(synthetic, synthetic_atlas, tmp_path):
    out, staging = tmp_path / "out", tmp_path / "work" / "qc-figures"
    staging.parent.mkdir()
    for original in (synthetic["original"], None):  # against the original, and the image alone
        record = check_image(synthetic["defaced"], original, "deface", synthetic_atlas, output_dir=out,
                             figures_dir=out / "sub-x" / "figures", staging_dir=staging, subject="x", session=None, seed=1)
        cited = [relative for group in ("input", "output", "slices") for relative in record["renders"][group].values()]
        assert cited and all(relative.startswith("sub-x/figures/") for relative in cited)
        assert all((staging / Path(relative).name).is_file() for relative in cited)
    assert not out.exists()  # nothing in the QC folder until the caller moves the figures in


def test_the_bridge_names_a_missing_file_and_refuses_an_unknown_method(synthetic, synthetic_atlas, tmp_path):
    atlas_dir = synthetic_atlas.template.parent

    def ask(**change) -> dict:
        request = {"image": str(synthetic["defaced"]), "original": None, "method": "deface", "atlas": str(atlas_dir),
                   "output_dir": str(tmp_path), "figures_dir": str(tmp_path / "f"), "subject": "x", "session": None,
                   "seed": 1, "reference_is_t1w": True}
        return json.loads(api.qc_image(json.dumps({**request, **change})))

    missing = ask(original=str(tmp_path / "nothere.nii.gz"))
    assert not missing["ok"] and missing["error"]["kind"] == "input_missing"
    assert str(tmp_path / "nothere.nii.gz") in missing["error"]["message"]
    unknown = ask(method="blur")
    assert not unknown["ok"] and unknown["error"]["kind"] == "bad_input"


# ----------------------------------------------------------------------------- the average head


@pytest.fixture(scope="module")
def average_head(tmp_path_factory):
    """The atlas template (the average head: the CNN finds its face) on a 2 mm grid, and its pipeline deface."""
    atlas = real_atlas()
    root = tmp_path_factory.mktemp("standalone-average")
    img = nib.load(str(atlas.template))
    data = ndi.zoom(ndi.gaussian_filter(np.asarray(img.dataobj, np.float32), 0.84), 0.5, order=1, grid_mode=False)
    original = save_subject(root / "average_T1w.nii.gz", data, img.affine @ np.diag([2.0, 2.0, 2.0, 1.0]), np.int16)
    return {"atlas": atlas, "original": original, "defaced": pipeline_deface(original, atlas, root)}


def test_deface_against_the_original_passes_when_the_cnn_face_is_gone(average_head, tmp_path):
    record = run_check(average_head["defaced"], average_head["original"], average_head["atlas"], tmp_path)
    assert record["status"] == "PASS", record["reason"]
    assert record["checks"]["face"]["verdict"] == "pass"
    assert sum("cnn" in fired for fired in record["checks"]["face_views_input"].values()) >= 3
    assert not any("cnn" in fired for fired in record["checks"]["face_views_output"].values())
    assert record["checks"]["brain_voxels_changed"]["value"] == 0


def test_an_image_alone_with_a_face_fails_deface_and_one_without_passes(average_head, tmp_path):
    intact = run_check(average_head["original"], None, average_head["atlas"], tmp_path / "intact")
    cnn_views = [v for v, fired in intact["checks"]["face_views_output"].items() if "cnn" in fired]
    assert len(cnn_views) >= 3
    assert intact["status"] == "FAILED" and intact["checks"]["face"]["verdict"] == "fail"
    assert intact["reason"] == f"deface: a face is found in {', '.join(cnn_views)}"
    assert intact["checks"]["brain_voxels_changed"] == NOT_CHECKED and intact["checks"]["identity"] is None

    defaced = run_check(average_head["defaced"], None, average_head["atlas"], tmp_path / "defaced")
    assert not any("cnn" in fired for fired in defaced["checks"]["face_views_output"].values())
    hog = any("hog" in fired for fired in defaced["checks"]["face_views_output"].values())
    # HOG's face-like hits on a cut face make the verdict inconclusive, never a failure
    assert defaced["status"] == "PASS" and defaced["checks"]["face"]["verdict"] == ("inconclusive" if hog else "pass")
    assert "give --original" in defaced["checks"]["face"]["detail"]  # a weaker verdict than with the original


def test_reface_against_the_original_fails_when_the_face_is_the_same(average_head, tmp_path):
    record = run_check(average_head["original"], average_head["original"], average_head["atlas"], tmp_path, method="reface")
    identity = record["checks"]["identity"]
    assert identity["threshold"] == face.IDENTITY_THRESHOLD and identity["distance"] is not None
    assert identity["distance"] <= face.IDENTITY_THRESHOLD
    assert record["status"] == "FAILED" and record["reason"].startswith("reface: distance")
    # The atlas face is rendered by the original's camera and compared, as in the pipeline: this
    # original is the atlas template itself, so the atlas is as near as the person.
    assert identity["atlas"]["decides"] and not identity["atlas"]["nearer_atlas"]
    assert set(record["renders"]["atlas"]) >= set(identity["atlas"]["views"])


# ----------------------------------------------------------------------------- person A


def test_person_a_pipeline_deface_checked_standalone(tmp_path):
    original = person_a_anat() / "sub-A_ses-01_T1w.nii.gz"
    atlas = real_atlas()
    defaced = pipeline_deface(original, atlas, tmp_path)
    record = run_check(defaced, original, atlas, tmp_path)
    assert record["checks"]["brain_voxels_changed"]["value"] == 0 and record["checks"]["header"]["pass"]
    assert not any("cnn" in fired for fired in record["checks"]["face_views_output"].values())
    # The CNN does not see A's intact face either (docs/qc-calibration.md): inconclusive, not a pass.
    assert record["checks"]["face"]["verdict"] in ("pass", "inconclusive")
    assert record["checks"]["registration"]["flag"] == "ok"
    assert record["status"] == "PASS", record["reason"]


def test_person_a_intact_t1w_alone_is_never_passed_as_defaced(tmp_path):
    """The CNN misses A's intact face (its field of view ends below the nose); HOG sees it, so
    an intact head checked alone must not come out as a clean deface PASS."""
    original = person_a_anat() / "sub-A_ses-01_T1w.nii.gz"
    record = run_check(original, None, real_atlas(), tmp_path)
    assert record["checks"]["face"]["verdict"] in ("inconclusive", "fail")
