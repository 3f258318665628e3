"""The deface face check concludes from the face's landmarks found in the volume itself."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import grid_points, save_subject
from test_landmarks import EYE_L, EYE_R, _synthetic

from micanon.qc import face_checks
from micanon.io import read_image


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deface_check")
    data, affine = _synthetic()
    points = grid_points(data.shape, affine)  # world = the head's own mm in this head
    parts = {
        "face": (points[..., 1] > 45) & (points[..., 2] < 15),
        "nose": points[..., 1] > 80,
        "eyes": (np.linalg.norm(points - EYE_L, axis=-1) < 14) | (np.linalg.norm(points - EYE_R, axis=-1) < 14),
    }
    path = save_subject(folder / "sub-x_T1w.nii.gz", data, affine)
    return folder, data, affine, parts, read_image(str(path))


def _output(folder, name, data, affine, removed):
    out = data.copy()
    out[removed] = 0.0
    return read_image(str(save_subject(folder / name, out, affine)))


def test_landmarks_removed_by_a_deface_pass_the_check(subject):
    folder, data, affine, parts, before = subject
    after = _output(folder, "defaced.nii.gz", data, affine, parts["face"])
    found = face_checks.face_landmarks_removed(before, after)
    assert len([f for f in found["found"] if f.startswith("eye")]) == 2, found
    assert not found["kept"] and found["removed"]
    check = face_checks.deface_check(_no_renders(), None, "no renders in this test", found)
    assert check["verdict"] == "pass" and check["evidence"] == "landmarks"


def test_a_deface_that_leaves_the_eyes_fails_whatever_the_renders_say(subject):
    folder, data, affine, parts, before = subject
    after = _output(folder, "nose_only.nii.gz", data, affine, parts["nose"])
    found = face_checks.face_landmarks_removed(before, after)
    assert any(k.startswith("eye") for k in found["kept"]), found
    check = face_checks.deface_check(_no_renders(), None, "", found)
    assert check["verdict"] == "fail" and check["evidence"] == "landmarks"
    assert "eye at" in check["detail"]


def test_a_landmark_inside_the_brain_guard_is_not_taken_for_a_face(subject):
    folder, data, affine, parts, before = subject
    after = _output(folder, "nose_only_again.nii.gz", data, affine, parts["nose"])
    found = face_checks.face_landmarks_removed(before, after, brain_guard=parts["eyes"])
    assert not any(k.startswith("eye") for k in found["kept"]), found
    assert any("inside the brain guard" in k for k in found["ignored"]), found


def test_without_landmarks_or_renders_the_check_is_inconclusive():
    check = face_checks.deface_check(_no_renders(), None, "no head surface", {"found": [], "removed": [], "kept": []})
    assert check["verdict"] == "inconclusive" and check["pass"]


class _no_renders:
    """A stand-in for an input whose renders show nothing (the CNN sees no face)."""

    class renders:
        views: dict = {}

    def detections(self, view, detector):
        return []
