"""Per-output QC through the bridge call qc_outputs: brain, header, face and registration checks.

A synthetic head (made in code, no face the CNN recognises) exercises the brain and header
checks and the "inconclusive" face verdict; the atlas template (the pydeface average head,
which the CNN does recognise) a real deface, a deface that removed nothing and a reface that
changed nothing; person A (skipped where absent) a real T1w and an angiogram. Every record is
checked against the shape src/qc/records.ts validates.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path, PurePosixPath

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image

from conftest import face_roi_of, grid_points, make_subject, person_a_anat, real_atlas
from micanon import api, face, qc
from micanon.io import read_image, write_like

SUBJECT, SESSION = "01", "01"
ANAT = f"sub-{SUBJECT}/ses-{SESSION}/anat"


# ----------------------------------------------------------------------------- the record's shape

LABEL = re.compile(r"^[A-Za-z0-9]+$")


def assert_relative(path) -> None:
    assert isinstance(path, str) and path, path
    assert not PurePosixPath(path).is_absolute() and "\\" not in path and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path), path
    assert not PurePosixPath(path).parts[:1] == ("..",) and ".." not in PurePosixPath(path).parts, path


def assert_view_map(mapping, check) -> None:
    assert isinstance(mapping, dict)
    for key, value in mapping.items():
        assert isinstance(key, str) and key
        check(value)


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def assert_qc_record(record: dict) -> None:
    """Hand-written mirror of qcRecordSchema (src/qc/records.ts): required keys, types, enums."""
    assert LABEL.match(record["subject"])
    assert record["session"] is None or LABEL.match(record["session"])
    assert_relative(record["input"])
    assert record["output"] is None or assert_relative(record["output"]) is None
    assert record["method"] in ("deface", "reface", "warpface")
    assert record["status"] in ("PASS", "FAILED")
    assert record.get("reason") is None or isinstance(record["reason"], str)
    checks = record["checks"]
    brain = checks["brain_voxels_changed"]
    assert is_count(brain["value"]) and is_count(brain["guard_voxels"]) and isinstance(brain["pass"], bool)
    assert isinstance(checks["header"]["pass"], bool)
    assert all(isinstance(d, (str, dict)) for d in checks["header"]["differences"])
    assert isinstance(checks["face"]["pass"], bool)
    assert isinstance(checks["face"]["rule"], str) and isinstance(checks["face"]["detail"], str)
    for key in ("face_views_input", "face_views_output"):
        assert_view_map(checks[key], lambda fired: isinstance(fired, list) and all(isinstance(d, str) for d in fired))
    identity = checks["identity"]
    if identity is not None:
        assert identity["distance"] is None or (isinstance(identity["distance"], float) and identity["distance"] >= 0)
        assert isinstance(identity["threshold"], float) and identity["threshold"] >= 0
        assert isinstance(identity["model"], str)
        assert_view_map(identity["per_view"], lambda d: d is None or (isinstance(d, float) and d >= 0))
    registration = checks["registration"]
    assert isinstance(registration["metric"], str)
    assert registration["value"] is None or isinstance(registration["value"], (int, float))
    assert registration["flag"] in ("ok", "scanner", "poor") and isinstance(registration["pass"], bool)
    for group in ("input", "output", "slices"):
        assert_view_map(record["renders"][group], assert_relative)
    # The record must also survive JSON as the bridge sends it.
    assert json.loads(json.dumps(record)) == record


# ----------------------------------------------------------------------------- helpers


def run_qc(output_dir: Path, bids_dir: Path, items: list[dict], subject=SUBJECT, session=SESSION) -> dict:
    reply = json.loads(api.qc_outputs(json.dumps({
        "output_dir": str(output_dir), "bids_dir": str(bids_dir), "subject": subject, "session": session,
        "figures_dir": str(output_dir / f"sub-{subject}" / "figures"), "items": items,
    })))
    assert reply["ok"], reply.get("error", {}).get("traceback")
    result = reply["result"]
    assert len(result["records"]) == len(items) == len(result["timings"]["items"])
    for record in result["records"]:
        assert_qc_record(record)
        for group in ("input", "output", "slices"):
            for relative in record["renders"][group].values():
                assert (output_dir / relative).is_file(), relative
    return result


def item(input_path: Path, output_path: Path, method: str, **extra) -> dict:
    entry = {
        "input": str(input_path), "output": str(output_path),
        "output_name": f"{ANAT}/{output_path.name}", "method": method,
        "brain_voxels_changed": 0, "guard_voxels": 1000, "brain_guard": None, "face_roi": None,
        "head_affine": None, "registration": {"metric": "ncc", "value": 0.9, "flag": "ok"},
    }
    entry.update(extra)
    return entry


def save_mask(path: Path, mask: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), str(path))
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A BIDS folder with the synthetic head (int16 with scaling, 3 mm), its guard and face ROI,
    and the same head with its face ROI zeroed ("faceless": the CNN finds no face on it)."""
    root = tmp_path_factory.mktemp("qc-synthetic")
    bids, work = root / "bids", root / "work"
    (bids / ANAT).mkdir(parents=True)
    work.mkdir()
    data, affine, parts = make_subject()
    img = nib.Nifti1Image(data, affine)
    img.set_data_dtype(np.int16)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    t1w = bids / ANAT / f"sub-{SUBJECT}_ses-{SESSION}_T1w.nii.gz"
    img.to_filename(str(t1w))
    stored = read_image(t1w)
    brain_guard = ndi.binary_dilation(parts["brain"] | parts["ventricle"], iterations=1)
    face_roi = face_roi_of(grid_points(data.shape, affine)) & ~brain_guard
    faceless = bids / ANAT / f"sub-{SUBJECT}_ses-{SESSION}_acq-faceless_T1w.nii.gz"
    write_like(stored, defaced(stored, face_roi), faceless, "micanon test input without a face")
    return {
        "root": root, "bids": bids, "t1w": t1w, "stored": stored, "faceless": faceless,
        "guard": save_mask(work / "guard.nii.gz", brain_guard, affine), "guard_mask": brain_guard,
        "face_roi": save_mask(work / "face.nii.gz", face_roi, affine), "face_mask": face_roi,
    }


def defaced(stored, face_mask: np.ndarray) -> np.ndarray:
    raw = stored.raw.copy()
    raw[face_mask] = 0
    return raw


@pytest.fixture(scope="module")
def faceless_run(synthetic, tmp_path_factory) -> dict[str, dict]:
    """One qc_outputs call on the faceless head with an output per fault (records by name).

    The face check is inconclusive on this head, so each record shows the other checks alone.
    """
    out_dir = tmp_path_factory.mktemp("qc-faceless")
    source = synthetic["faceless"]
    stored = read_image(source)
    outputs = {}

    outputs["clean"] = out_dir / "clean.nii.gz"
    shutil.copy(source, outputs["clean"])

    img = nib.load(str(source))
    moved = img.affine.copy()
    moved[0, 3] += 1.5
    shifted = nib.Nifti1Image(np.asarray(img.dataobj.get_unscaled()), moved, img.header.copy())
    shifted.set_sform(moved, 1)
    outputs["shifted"] = out_dir / "shifted.nii.gz"
    shifted.to_filename(str(outputs["shifted"]))

    as_float = nib.Nifti1Image(stored.real(), stored.affine, img.header.copy())
    as_float.set_data_dtype(np.float32)
    outputs["float"] = out_dir / "float.nii.gz"
    as_float.to_filename(str(outputs["float"]))

    raw = stored.raw.copy()
    inside = np.argwhere(synthetic["guard_mask"])
    raw[tuple(inside[len(inside) // 2])] += 1
    outputs["brain"] = out_dir / "brain.nii.gz"
    write_like(stored, raw, outputs["brain"], "micanon test one brain voxel changed")

    guarded = {"brain_guard": str(synthetic["guard"]), "face_roi": str(synthetic["face_roi"])}
    items = {
        "clean": item(source, outputs["clean"], "deface", **guarded),
        "shifted": item(source, outputs["shifted"], "deface"),
        "float": item(source, outputs["float"], "deface"),
        "brain": item(source, outputs["brain"], "deface", brain_guard=str(synthetic["guard"]), brain_voxels_changed=0),
        "poor": item(source, outputs["clean"], "deface", registration={"metric": "ncc", "value": 0.61, "flag": "poor"}),
        "scanner": item(source, outputs["clean"], "deface", registration={"metric": "mi", "value": 0.01, "flag": "scanner"}),
        # No guard file: nothing to re-check, the engine's own count stands.
        "counted": item(source, outputs["clean"], "deface", brain_voxels_changed=3),
    }
    result = run_qc(out_dir, synthetic["bids"], list(items.values()))
    return dict(zip(items, result["records"]))


# ----------------------------------------------------------------------------- synthetic head


def test_a_clean_deface_passes(synthetic, tmp_path):
    stored = synthetic["stored"]
    out = tmp_path / "T1w_deface.nii.gz"
    write_like(stored, defaced(stored, synthetic["face_mask"]), out, "micanon test deface")
    masks = {"brain_guard": str(synthetic["guard"]), "face_roi": str(synthetic["face_roi"])}
    record = run_qc(tmp_path, synthetic["bids"], [item(synthetic["t1w"], out, "deface", **masks)])["records"][0]
    assert record["status"] == "PASS", record["reason"]
    assert record["input"] == f"{ANAT}/{synthetic['t1w'].name}" and record["output"] == f"{ANAT}/{out.name}"
    brain = record["checks"]["brain_voxels_changed"]
    assert brain["rechecked"] and brain["value"] == 0 and brain["guard_voxels"] == int(synthetic["guard_mask"].sum())
    assert record["checks"]["header"] == {"pass": True, "differences": []}
    # The CNN sees (weakly) a face in this cartoon head; whether it does or not, none is left.
    assert record["checks"]["face"]["verdict"] in ("pass", "inconclusive")
    assert not any(record["checks"]["face_views_output"].values())
    assert record["checks"]["identity"] is None
    assert set(record["renders"]["slices"]) == {"input_sagittal", "output_sagittal", "masks_overlay", "registration_overlay"}
    assert len(record["renders"]["input"]) == len(record["renders"]["output"]) == 9


def test_deface_of_a_head_without_a_face_the_cnn_finds_is_inconclusive_and_passes(faceless_run):
    record = faceless_run["clean"]
    assert not any("cnn" in fired for fired in record["checks"]["face_views_input"].values())
    assert record["checks"]["face"]["verdict"] == "inconclusive" and "inconclusive" in record["checks"]["face"]["rule"]
    assert record["checks"]["face"]["pass"] and record["status"] == "PASS" and record["reason"] is None
    assert record["checks"]["face_views_output"] == {}  # not searched: it could prove nothing


def test_a_changed_affine_or_stored_dtype_fails_the_header_check(faceless_run):
    moved = faceless_run["shifted"]
    assert moved["status"] == "FAILED" and moved["output"] is None
    assert any(d.startswith("sform differs") for d in moved["checks"]["header"]["differences"])
    assert any(d.startswith("affine differs") for d in moved["checks"]["header"]["differences"])
    assert "header changed" in moved["reason"]
    as_float = faceless_run["float"]
    assert as_float["status"] == "FAILED"
    assert "data type int16 -> float32" in as_float["checks"]["header"]["differences"]


def test_a_changed_brain_voxel_fails_even_when_the_engine_counted_none(faceless_run):
    record = faceless_run["brain"]
    assert record["status"] == "FAILED"
    assert record["checks"]["brain_voxels_changed"]["value"] == 1 and record["checks"]["brain_voxels_changed"]["engine_value"] == 0
    assert record["reason"] == "1 brain voxels changed"
    assert record["checks"]["header"]["pass"]


def test_a_poor_registration_or_an_engine_count_fails(faceless_run):
    poor, counted = faceless_run["poor"], faceless_run["counted"]
    assert poor["status"] == "FAILED" and poor["reason"] == "registration poor ncc 0.610"
    assert poor["checks"]["registration"]["pass"] is False
    # not registered at all (scanner coordinates, flagged): a warning in the report, not a failure
    scanner = faceless_run["scanner"]
    assert scanner["status"] == "PASS" and scanner["checks"]["registration"] == {"metric": "mi", "value": 0.01, "flag": "scanner", "pass": True}
    assert counted["status"] == "FAILED" and not counted["checks"]["brain_voxels_changed"]["rechecked"]
    assert counted["checks"]["brain_voxels_changed"]["value"] == 3


def test_a_request_with_an_unknown_method_or_a_path_outside_its_folder_is_refused(synthetic, tmp_path):
    def ask(bids_dir: Path, **change) -> dict:
        entry = item(synthetic["t1w"], synthetic["t1w"], "deface")
        entry.update(change)
        return json.loads(api.qc_outputs(json.dumps({
            "output_dir": str(tmp_path), "bids_dir": str(bids_dir), "subject": SUBJECT, "session": None,
            "figures_dir": str(tmp_path / "figures"), "items": [entry],
        })))

    refused = [ask(synthetic["bids"], method="blur"), ask(synthetic["bids"], output_name="../escape.nii.gz"),
               ask(tmp_path / "elsewhere")]
    for reply in refused:
        assert not reply["ok"] and reply["error"]["kind"] == "bad_input", reply
    assert "not inside" in refused[2]["error"]["message"]


# ----------------------------------------------------------------------------- the average head


def on_coarse_grid(path: Path, factor: int = 2, order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """An atlas image on a 2 mm grid: rendering stays fast and the CNN still finds the face (7 of 9 views)."""
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, np.float32)
    if order:
        data = ndi.gaussian_filter(data, 0.42 * factor)
    else:
        data = ndi.maximum_filter(data, size=factor)  # a mask keeps every voxel it touched
    return ndi.zoom(data, 1 / factor, order=order, grid_mode=False), img.affine @ np.diag([factor, factor, factor, 1.0])


@pytest.fixture(scope="module")
def average_head(tmp_path_factory):
    """The atlas template (pydeface's average head, whole face) as a 2 mm BIDS T1w, with masks."""
    atlas = real_atlas()
    root = tmp_path_factory.mktemp("qc-average")
    bids = root / "bids"
    (bids / ANAT).mkdir(parents=True)
    template, affine = on_coarse_grid(atlas.template)
    t1w = bids / ANAT / f"sub-{SUBJECT}_ses-{SESSION}_T1w.nii.gz"
    img = nib.Nifti1Image(template, affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    img.to_filename(str(t1w))
    brain = on_coarse_grid(atlas.brain, order=0)[0] > 0.5
    guard = ndi.binary_dilation(brain, iterations=2)
    face_roi = (on_coarse_grid(atlas.face_roi, order=0)[0] > 0.5) & ~guard
    return {
        "bids": bids, "t1w": t1w, "stored": read_image(t1w), "face_mask": face_roi,
        "guard": save_mask(root / "guard.nii.gz", guard, affine), "face_roi": save_mask(root / "face.nii.gz", face_roi, affine),
    }


def test_average_head_deface_passes_only_when_the_face_is_gone(average_head, tmp_path):
    stored = average_head["stored"]
    gone = tmp_path / "avg_defaced.nii.gz"
    write_like(stored, defaced(stored, average_head["face_mask"]), gone, "micanon test deface")
    kept = tmp_path / "avg_kept.nii.gz"
    write_like(stored, stored.raw, kept, "micanon test nothing removed")
    masks = {"brain_guard": str(average_head["guard"]), "face_roi": str(average_head["face_roi"])}
    result = run_qc(tmp_path, average_head["bids"], [
        item(average_head["t1w"], gone, "deface", **masks),
        item(average_head["t1w"], kept, "deface", **masks),
        item(average_head["t1w"], kept, "reface", **masks),
    ])
    real, untouched, same_face = result["records"]
    # The input's views are rendered and searched once, then shared by its three outputs.
    assert real["renders"]["input"] == untouched["renders"]["input"] == same_face["renders"]["input"]
    assert [t["input_s"] > 0 for t in result["timings"]["items"]] == [True, False, False]
    # Two deface outputs of one input in one call keep their own figures.
    assert real["renders"]["output"]["front"] != untouched["renders"]["output"]["front"]
    assert sum("cnn" in fired for fired in real["checks"]["face_views_input"].values()) >= 3

    assert real["status"] == "PASS", real["reason"]
    assert real["checks"]["face"]["verdict"] == "pass"
    assert not any(real["checks"]["face_views_output"].values())

    assert untouched["status"] == "FAILED" and untouched["checks"]["face"]["verdict"] == "fail"
    # both kinds of evidence see the face left: the eyes in the volume, the CNN in the renders
    assert "deface left eye" in untouched["reason"] and "a face is still found" in untouched["reason"]
    assert untouched["checks"]["face"]["evidence"] == "landmarks and renders"
    assert any("cnn" in fired for fired in untouched["checks"]["face_views_output"].values())

    identity = same_face["checks"]["identity"]
    assert same_face["status"] == "FAILED" and same_face["checks"]["face"]["verdict"] == "fail"
    assert identity["distance"] is not None and identity["distance"] <= face.IDENTITY_THRESHOLD
    assert identity["threshold"] == face.IDENTITY_THRESHOLD and identity["model"] == face.MODEL_VERSION
    # The positive control: this whole face removed moves the descriptor far past the threshold in
    # most views, and they decide; the right profile barely moves (measured 0.16), so it is blind.
    removed = identity["face_removed"]
    assert set(removed["per_view"]) == set(identity["per_view"])
    blind = set(identity["views_blind"])
    assert "right" in blind and identity["views_compared"] == len(identity["per_view"]) - len(blind) >= 3
    assert all((removed["per_view"][v] > face.IDENTITY_THRESHOLD) != (v in blind) for v in removed["per_view"])
    assert "with its face removed" in same_face["reason"] and "not deciding" in same_face["reason"]


# ----------------------------------------------------------------------------- person A


def test_an_image_without_a_head_surface_is_shown_as_projections(tmp_path):
    """A TOF-like image: two thin bright vessels in an empty field, one 15 mm off the midline. A
    mid-sagittal slice would show nothing of it; the figures are MIPs and say so."""
    bids = tmp_path / "bids"
    (bids / ANAT).mkdir(parents=True)
    volume = np.zeros((80, 80, 60), np.float32)
    volume[55, 10:70, 30] = 300.0  # off the midline, front to back
    volume[40, 40, 5:55] = 200.0  # on the midline, foot to head
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-40, -40, -30]
    angio = bids / ANAT / f"sub-{SUBJECT}_ses-{SESSION}_angio.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), str(angio))
    out = tmp_path / "angio_copy.nii.gz"
    shutil.copy(angio, out)
    record = run_qc(tmp_path, bids, [item(angio, out, "deface")])["records"][0]
    assert "no head surface" in record["checks"]["face"]["detail"]
    assert record["renders"].get("projection") == "mip"
    for name in ("input_sagittal", "output_sagittal"):
        picture = np.asarray(Image.open(tmp_path / record["renders"]["slices"][name]).convert("L"))
        rows, cols = np.nonzero(picture > 100)
        # both vessels, each as a line: the front-to-back one spans ~60 columns, the other ~50 rows
        assert np.ptp(cols) >= 55 and np.ptp(rows) >= 45, name


def test_person_a_t1w_and_angiogram_give_valid_records(tmp_path):
    anat = person_a_anat()
    bids = anat.parents[2]
    t1w, angio = anat / "sub-A_ses-01_T1w.nii.gz", anat / "sub-A_ses-01_angio.nii.gz"
    stored = read_image(t1w)
    # Test scaffolding, not a defacer: zero everything in front of a coronal plane 55 mm
    # behind the most anterior head voxel, below the brows (the eye globes included: QC finds them
    # in the volume and fails a deface that leaves them).
    real = stored.real()
    ijk = np.indices(real.shape).reshape(3, -1)
    ras = stored.affine[:3, :3] @ ijk + stored.affine[:3, 3:4]
    head = real.ravel() > np.percentile(real, 75)
    tip = int(np.argmax(np.where(head, ras[1], -np.inf)))
    cut = (ras[1] > ras[1, tip] - 55.0) & (ras[2] < ras[2, tip] + 55.0)
    raw = stored.raw.copy()
    raw[cut.reshape(real.shape)] = 0
    t1w_out, angio_out = tmp_path / "T1w_cut.nii.gz", tmp_path / "angio_copy.nii.gz"
    write_like(stored, raw, t1w_out, "micanon test plane cut")
    angio_stored = read_image(angio)
    write_like(angio_stored, angio_stored.raw, angio_out, "micanon test copy")
    records = run_qc(tmp_path, bids, [
        item(t1w, t1w_out, "deface", output_name="sub-A/ses-01/anat/sub-A_ses-01_desc-defaced_T1w.nii.gz"),
        item(angio, angio_out, "reface", output_name="sub-A/ses-01/anat/sub-A_ses-01_desc-refaced_angio.nii.gz"),
    ], subject="A", session="01")["records"]
    t1w_record, angio_record = records
    assert t1w_record["input"] == "sub-A/ses-01/anat/sub-A_ses-01_T1w.nii.gz"
    assert t1w_record["checks"]["header"]["pass"] and t1w_record["checks"]["face"]["verdict"] == "pass"
    assert "landmarks" in t1w_record["checks"]["face"]["evidence"]
    assert t1w_record["status"] == "PASS", t1w_record["reason"]
    assert angio_record["status"] == "PASS" and angio_record["checks"]["face"]["verdict"] == "inconclusive"
    assert "no head surface" in angio_record["checks"]["face"]["detail"]
    assert angio_record["renders"]["input"] == {} and angio_record["checks"]["identity"]["distance"] is None
    assert angio_record["renders"]["projection"] == "mip" and "projection" not in t1w_record["renders"]


def test_identity_is_inconclusive_when_removing_the_face_moves_no_view(average_head):
    """A control that did not remove the face (the input itself) makes every view blind: the
    check cannot tell, so it says inconclusive rather than pass or fail."""
    before = qc._Head(average_head["stored"], None)
    after = qc._Head(average_head["stored"], None)
    check, identity = qc.identity_check(before, after, face_removed=before)
    assert check["verdict"] == "inconclusive" and identity["distance"] is None
    assert identity["views_compared"] == 0 and len(identity["views_blind"]) == len(identity["per_view"]) >= 3
    assert "none can tell this face from none" in check["detail"]


def test_an_output_face_the_detectors_no_longer_find_is_still_compared(average_head):
    """The identity rule cannot be passed by hiding the face from the detectors: every view with
    an input face is compared inside the input's box, found or not in the output."""
    before = qc._Head(average_head["stored"], None)
    after = qc._Head(average_head["stored"], None)
    for view in after.renders.views:  # the same head, but pretend no detector finds its face
        for detector in face.DETECTORS:
            after._found[(view, detector)] = []
    check, identity = qc.identity_check(before, after)
    assert identity["views_compared"] >= 3
    assert set(identity["boxes"].values()) == {"input box"}
    assert identity["distance"] == pytest.approx(0.0, abs=1e-6)
    assert check["verdict"] == "fail"
