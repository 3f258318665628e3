"""Per-output QC through the bridge call qc_outputs (micanon.qc.run): whole records, every check
and the verdict together.

The synthetic head exercises the brain and header checks and the "inconclusive" face verdict;
the atlas template (the pydeface average head) a real deface, a deface that removed nothing and a
reface that changed nothing; person A (skipped where absent) a real T1w and an angiogram. Every
record is checked against the shape src/engine/qc-record.ts validates.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import person_a_anat
from micanon import face
from micanon.io import read_image, write_like
from qc_fixtures import ANAT, SUBJECT, assert_qc_reply, average_head, defaced, item, run_qc, synthetic  # noqa: F401 - fixtures


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
        # warpface: the engine's figures for its face warp travel into the record's checks.
        "warped": item(source, outputs["clean"], "warpface", warp={"max_mm": 12.5, "min_jacobian": 0.25}),
    }
    result = run_qc(out_dir, synthetic["bids"], list(items.values()))
    return dict(zip(items, result["records"]))


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


def test_with_a_staging_folder_the_figures_are_drawn_there_and_cited_where_they_will_land(synthetic, tmp_path):
    """The pipeline asks for the figures in the session's work folder and moves them into the QC
    folder once the records are back: a run killed during QC leaves no face renders there."""
    stored = synthetic["stored"]
    out = tmp_path / "T1w_deface.nii.gz"
    write_like(stored, defaced(stored, synthetic["face_mask"]), out, "micanon test deface")
    qc_dir, staging = tmp_path / "qc", tmp_path / "work"
    staging.mkdir()
    record = run_qc(qc_dir, synthetic["bids"], [item(synthetic["t1w"], out, "deface")], staging_dir=staging)["records"][0]
    cited = [relative for group in ("input", "output", "slices") for relative in record["renders"][group].values()]
    assert cited and all(relative.startswith(f"sub-{SUBJECT}/figures/") for relative in cited)
    assert sorted(p.name for p in staging.iterdir()) == sorted(Path(relative).name for relative in cited)
    assert not any(p.is_file() for p in qc_dir.rglob("*"))


def test_a_warpface_record_carries_its_warp_s_reach_and_smallest_jacobian(faceless_run):
    assert faceless_run["warped"]["checks"]["warp"] == {"max_mm": 12.5, "min_jacobian": 0.25}
    assert all("warp" not in record["checks"] for name, record in faceless_run.items() if name != "warped")


def test_the_records_are_held_to_the_pipelines_own_schema(faceless_run):
    """run_qc checks every reply against qcRepliesSchema (through node): a record that breaks it,
    here an input named outside bids_dir or a status the schema does not know, is caught."""
    record = faceless_run["clean"]
    assert_qc_reply({"records": [record]})
    for broken in ({**record, "input": "/elsewhere/sub-01_T1w.nii.gz"}, {**record, "status": "MAYBE"}):
        with pytest.raises(AssertionError, match="breaks qcRepliesSchema"):
            assert_qc_reply({"records": [broken]})


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
    assert record["status"] == "FAILED" and record["hard"]
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


# ----------------------------------------------------------------------------- the average head


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
    ], reference={"input": str(average_head["t1w"]), "reason": "the T1w"})
    real, untouched, same_face = result["records"]
    # The engine gives the verdict: --qc-fail-ok may write a face failure, never a brain or header one.
    assert [r["hard"] for r in result["records"]] == [False, False, False]
    assert real["reference"] == {"input": f"{ANAT}/{average_head['t1w'].name}", "reason": "the T1w"}
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
