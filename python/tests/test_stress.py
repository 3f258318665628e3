"""The stress set (tests/stress.py): every case gets its expected fit verdict, and the planted
failure is refused by the brain check itself. Real heads: skipped where ../shared/data is absent.

Each case runs the engine's whole reference fit (ROBEX, the atlas registration, the fit check):
about a minute per new head on two cores; heads already seen come from the native-brain cache.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import real_atlas

import stress
from micanon import qc
from micanon.io import read_image
from micanon.session import anonymize_session, load_atlas_images


@pytest.fixture(scope="module")
def atlas_images():
    return load_atlas_images(real_atlas())


@pytest.mark.parametrize("case", stress.CASES, ids=[c.name for c in stress.CASES])
def test_stress_case_gets_its_expected_verdict(case, atlas_images, tmp_path):
    fit, head = stress.run_case(case, atlas_images, str(tmp_path))
    if fit is None:
        pytest.skip(f"{case.source}'s data is absent (../shared/data)")
    check = fit.check
    assert check.flag == case.fit, (case.name, check.as_dict())
    assert check.hard == case.hard, (case.name, check.as_dict())
    if case.shift_fit_mm is None:
        # a good fit may meet the brain's edge (B's frontal pole), never reach deep into it
        assert check.evidence.get("face_roi_deep_in_brain_ml", 0.0) <= 0.5


def test_qform_0_with_an_sform_reads_as_the_sform(tmp_path):
    if not stress.PERSON_A.exists():
        pytest.skip("person A's data is absent (../shared/data)")
    copy = tmp_path / "sform_only_T1w.nii.gz"
    stress.qform0_sform_only(stress.PERSON_A, copy)
    original, sform_only = read_image(str(stress.PERSON_A)), read_image(str(copy))
    assert np.allclose(original.affine, sform_only.affine)


def test_a_fit_that_puts_the_face_on_the_brain_is_refused_by_the_brain_check(atlas_images, tmp_path):
    """The planted failure, end to end in the engine: the guard keeps every brain voxel, and QC's
    brain check (which --qc-fail-ok cannot override) fails, naming the face ROI in the brain."""
    if not stress.PERSON_A.exists():
        pytest.skip("person A's data is absent (../shared/data)")
    planted = next(c for c in stress.CASES if c.shift_fit_mm is not None)
    bids = stress.PERSON_A.parents[3]
    out = tmp_path / "out"
    output = out / "sub-A_ses-01_desc-defaced_T1w.nii.gz"
    out.mkdir()
    with stress.shifted_fit(planted.shift_fit_mm):
        result = anonymize_session(str(stress.PERSON_A), [], ["deface"], real_atlas(), {str(stress.PERSON_A): {"deface": str(output)}},
                                   work_dir=str(tmp_path / "work"), dilate=6, seed=1)
    record = result["images"][0]
    assert record["brain_voxels_changed"] == 0 and record["native_brain_voxels_changed"] == 0
    assert record["registration"]["check"]["hard"] is True
    request = qc.QcRequest.from_json({
        "output_dir": str(out), "bids_dir": str(bids), "subject": "A", "session": "01",
        "figures_dir": str(out / "sub-A" / "figures"),
        "items": [{
            "input": str(stress.PERSON_A), "output": str(output), "output_name": output.name, "method": "deface",
            "brain_voxels_changed": 0, "guard_voxels": record["guard_voxels"], "brain_guard": record["brain_guard_mask"],
            "face_roi": record["face_roi_mask"], "head_affine": record["image_to_atlas"], "registration": record["registration"],
        }],
    })
    qc_record = qc.check_outputs(request)["records"][0]
    assert qc_record["status"] == "FAILED"
    assert qc_record["checks"]["brain_voxels_changed"]["pass"] is False
    assert "inside the brain" in qc_record["reason"]
