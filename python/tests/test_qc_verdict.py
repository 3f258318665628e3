"""The verdict (micanon.qc.verdict): status, reason and hard from the checks' evidence, and what an
image inherits from its session's reference. Records are built here as the checks write them."""

from __future__ import annotations

import copy

from micanon.qc.verdict import give_verdicts, image_alone_reason, verdict

T1W = "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"
PDW = "sub-01/ses-01/anat/sub-01_ses-01_PDw.nii.gz"
REFERENCE = {"input": T1W, "reason": "the T1w"}


def checks(**change) -> dict:
    out = {
        "brain_voxels_changed": {"value": 0, "guard_voxels": 1000, "pass": True, "engine_value": 0, "rechecked": True},
        "header": {"pass": True, "differences": []},
        "face": {"pass": True, "verdict": "pass", "rule": "identity", "detail": "min distance 0.7 > 0.4"},
        "face_views_input": {},
        "face_views_output": {},
        "identity": None,
        "registration": {"metric": "ncc", "value": 0.9, "flag": "ok", "pass": True},
    }
    out.update(change)
    return out


FAILED_FACE = {"pass": False, "verdict": "fail", "rule": "identity", "detail": "distance 0.2 <= 0.4 in front"}
INCONCLUSIVE = {"pass": True, "verdict": "inconclusive", "rule": "inconclusive: identity", "detail": "no face in the input"}


def record(input_: str, method: str, **change) -> dict:
    return {"subject": "01", "session": "01", "input": input_, "output": f"out/{method}.nii.gz", "method": method,
            "checks": checks(**change), "renders": {"input": {}, "output": {}, "slices": {}}}


def test_every_failed_check_is_named_and_only_brain_or_header_is_hard():
    passed = verdict(checks(), "reface")
    assert (passed.status, passed.reason, passed.hard) == ("PASS", None, False)
    face = verdict(checks(face=FAILED_FACE), "reface")
    assert (face.status, face.reason, face.hard) == ("FAILED", "reface: distance 0.2 <= 0.4 in front", False)
    poor = verdict(checks(registration={"metric": "ncc", "value": 0.61, "flag": "poor", "pass": False}), "deface")
    assert (poor.reason, poor.hard) == ("registration poor ncc 0.610", False)
    brain = {"value": 2, "guard_voxels": 1000, "pass": False, "engine_value": 0, "rechecked": True}
    header = {"pass": False, "differences": ["qform_code 1 -> 2"]}
    both = verdict(checks(brain_voxels_changed=brain, header=header, face=FAILED_FACE), "warpface")
    assert both.hard and both.reason == "2 brain voxels changed; header changed: qform_code 1 -> 2; warpface: distance 0.2 <= 0.4 in front"


def test_a_fit_inside_the_brain_is_hard_with_no_voxel_changed():
    brain = {"value": 0, "guard_voxels": 1000, "pass": False, "engine_value": 0, "rechecked": True,
             "face_roi_in_brain": "the face ROI reaches 9 mm into the brain"}
    decided = verdict(checks(brain_voxels_changed=brain), "deface")
    assert (decided.status, decided.reason, decided.hard) == ("FAILED", "the face ROI reaches 9 mm into the brain", True)


def test_an_inconclusive_image_fails_when_its_reference_failed_by_the_same_method():
    records = [record(T1W, "warpface", face=FAILED_FACE), record(PDW, "warpface", face=INCONCLUSIVE)]
    give_verdicts(records, REFERENCE)
    reference, pdw = records
    assert reference["status"] == "FAILED" and reference["checks"]["face"] == FAILED_FACE
    assert [pdw["status"], pdw["checks"]["face"]["pass"], pdw["checks"]["face"]["verdict"], pdw["output"], pdw["hard"]] == \
        ["FAILED", False, "fail", None, False]
    assert pdw["reason"] == "warpface: inconclusive here, and the reference (sub-01_ses-01_T1w.nii.gz) still shows the person after warpface"
    assert pdw["checks"]["face"]["inherited_from"] == T1W
    assert pdw["checks"]["face"]["detail"] == ("no face in the input; the reference sub-01_ses-01_T1w.nii.gz failed this check by the"
                                               " same method, and this image shares its masks and warp")
    assert pdw["reference"] == reference["reference"] == REFERENCE


def test_an_inconclusive_image_keeps_its_verdict_when_the_reference_passed_or_failed_another_method():
    records = [record(T1W, "warpface", face=FAILED_FACE), record(T1W, "reface"),
               record(PDW, "reface", face=INCONCLUSIVE), record(PDW, "deface", face=INCONCLUSIVE)]
    give_verdicts(records, REFERENCE)
    assert [r["status"] for r in records] == ["FAILED", "PASS", "PASS", "PASS"]
    assert records[2]["checks"]["face"] == INCONCLUSIVE and records[2]["output"] == "out/reface.nii.gz"


def test_a_conclusive_check_the_reference_itself_or_no_reference_inherit_nothing():
    conclusive = [record(T1W, "reface", face=FAILED_FACE), record(PDW, "reface")]
    give_verdicts(conclusive, REFERENCE)
    assert conclusive[1]["status"] == "PASS"
    inconclusive_reference = [record(T1W, "reface", face=INCONCLUSIVE)]
    give_verdicts(inconclusive_reference, REFERENCE)
    assert inconclusive_reference[0]["status"] == "PASS"
    alone = [record(T1W, "reface", face=FAILED_FACE), record(PDW, "reface", face=INCONCLUSIVE)]
    give_verdicts(alone, None)
    assert alone[1]["status"] == "PASS" and "reference" not in alone[1]


def test_an_inherited_failure_joins_the_image_own_failures():
    poor = {"metric": "mi", "value": 0.1, "flag": "poor", "pass": False}
    records = [record(T1W, "reface", face=FAILED_FACE), record(PDW, "reface", face=copy.deepcopy(INCONCLUSIVE), registration=poor)]
    give_verdicts(records, REFERENCE)
    assert records[1]["reason"] == ("reface: inconclusive here, and the reference (sub-01_ses-01_T1w.nii.gz) still shows the person"
                                    " after reface; registration poor mi 0.100")


def test_an_image_alone_fails_on_its_face_or_a_view_that_may_not_be_upright():
    alone = checks(face={"pass": True, "verdict": "inconclusive", "rule": "r", "detail": "no head surface"},
                   registration={"metric": "mi", "value": 0.2, "flag": "scanner", "pass": False})
    assert image_alone_reason(alone, "deface") == "registration poor mi 0.200: the views may not be upright"
    alone["face"] = {"pass": False, "verdict": "fail", "rule": "r", "detail": "a face is found in front"}
    alone["registration"]["pass"] = True
    assert image_alone_reason(alone, "deface") == "deface: a face is found in front"
    assert image_alone_reason(checks(), "deface") is None
