"""The reface/warpface identity check (micanon.qc.identity) on the average head."""

from __future__ import annotations

import pytest

from micanon import face
from micanon.qc.identity import (DEFACE_TOLERANCE, atlas_head, face_removed_head, identity_check,
                                 nearer_atlas_than_person, no_more_identifiable_than_deface)
from micanon.qc.seeing import Head
from qc_fixtures import average_head  # noqa: F401 - fixtures


def test_identity_is_inconclusive_when_removing_the_face_moves_no_view(average_head):
    """A control that did not remove the face (the input itself) makes every view blind: the
    check cannot tell, so it says inconclusive rather than pass or fail."""
    before = Head(average_head["stored"], None)
    after = Head(average_head["stored"], None)
    check, identity = identity_check(before, after, face_removed=before)
    assert check["verdict"] == "inconclusive" and identity["distance"] is None
    assert identity["views_compared"] == 0 and len(identity["views_blind"]) == len(identity["per_view"]) >= 3
    assert "none can tell this face from none" in check["detail"]


def test_an_output_face_the_detectors_no_longer_find_is_still_compared(average_head):
    """The identity rule cannot be passed by hiding the face from the detectors: every view with
    an input face is compared inside the input's box, found or not in the output."""
    before = Head(average_head["stored"], None)
    after = Head(average_head["stored"], None)
    for view in after.renders.views:  # the same head, but pretend no detector finds its face
        for detector in face.DETECTORS:
            after._found[(view, detector)] = []
    check, identity = identity_check(before, after)
    assert identity["views_compared"] >= 3
    assert set(identity["boxes"].values()) == {"input box"}
    assert identity["distance"] == pytest.approx(0.0, abs=1e-6)
    assert check["verdict"] == "fail"


def test_no_more_identifiable_than_deface_compares_means_over_the_deciding_views():
    """Person A's reface (per view, against its defaced control): 0.024 under it on average, within
    the tolerance; B's warpface: 0.068 under, more identifiable than deface."""
    a = no_more_identifiable_than_deface({"low": 0.493, "left_low": 0.429, "right": 0.426, "right_low": 0.556},
                                         {"low": 0.486, "left_low": 0.455, "right": 0.536, "right_low": 0.524, "front": 0.9})
    assert a["pass"] and a["deface_mean_distance"] == pytest.approx(0.50025) and a["tolerance"] == DEFACE_TOLERANCE
    b = no_more_identifiable_than_deface({"front": 0.50, "right": 0.43}, {"front": 0.60, "right": 0.47})
    assert not b["pass"] and b["mean_distance"] == pytest.approx(0.465)


def test_nearer_atlas_than_person_is_decided_by_the_means_over_the_deciding_views():
    """Person A's reface (4 deciding views): nearer the atlas in each, and on average by 0.29. A
    made-up output nearer the atlas in 3 of 4 views by a hair but much nearer the person in the
    fourth is not nearer the atlas: the means decide, the count of views is only recorded."""
    a = nearer_atlas_than_person({"front_low": 0.131, "left_low": 0.163, "right90": 0.300, "right_low": 0.165},
                                 {"front_low": 0.493, "left_low": 0.429, "right90": 0.426, "right_low": 0.556})
    assert a["nearer_atlas"] and a["views_nearer_atlas"] == 4
    assert a["mean_to_atlas"] == pytest.approx(0.18975) and a["mean_to_person"] == pytest.approx(0.476)
    assert a["views"] == ["low", "left_low", "right", "right_low"]
    assert a["per_view"]["right"] == {"to_atlas": 0.300, "to_person": 0.426}
    b = nearer_atlas_than_person({"front": 0.49, "left45": 0.49, "right45": 0.49, "right90": 0.70},
                                 {"front": 0.50, "left45": 0.50, "right45": 0.50, "right90": 0.30})
    assert b["views_nearer_atlas"] == 3 and not b["nearer_atlas"]


@pytest.fixture(scope="module")
def faceless_output(average_head):
    """The average head as the input, and as the output the same head with its face ROI set to
    background (the control too, so every view with a face decides and the deface rule holds)."""
    before = Head(average_head["stored"], None)
    after = face_removed_head(before, average_head["face_mask"], None)
    return before, after


def test_reface_fails_when_its_face_is_no_nearer_the_atlas_than_the_person(faceless_output):
    """With the person's own head as "the atlas", the output is exactly as far from the atlas as
    from the person in every view: the absolute and deface rules pass, the atlas rule fails reface
    and is only recorded for warpface."""
    before, after = faceless_output
    atlas = atlas_head(before, before.nifti.get_fdata(dtype=float), None)
    check, identity = identity_check(before, after, face_removed=after, atlas=atlas, atlas_decides=True)
    record = identity["atlas"]
    assert identity["relative"]["pass"] and identity["distance"] > face.IDENTITY_THRESHOLD
    assert record["decides"] and record["nearer_atlas"] is False and record["views_nearer_atlas"] == 0
    assert record["mean_to_atlas"] == pytest.approx(record["mean_to_person"], abs=1e-6)
    assert len(record["views"]) == identity["views_compared"] >= 3
    assert check["verdict"] == "fail" and "nearer the person than the atlas" in check["detail"]
    check, identity = identity_check(before, after, face_removed=after, atlas=atlas, atlas_decides=False)
    assert check["verdict"] == "pass" and identity["atlas"]["nearer_atlas"] is False and not identity["atlas"]["decides"]


def test_reface_passes_when_its_face_is_the_atlas_face(faceless_output, average_head):
    """With the output itself (placed on the input's grid, seen by the input's camera) as "the
    atlas", the output is far nearer the atlas than the person in every deciding view."""
    before, after = faceless_output
    atlas = atlas_head(before, after.nifti.get_fdata(dtype=float), None)
    assert atlas.renders.camera[1] == pytest.approx(before.renders.camera[1])  # framed by the input's camera
    check, identity = identity_check(before, after, face_removed=after, atlas=atlas, atlas_decides=True)
    record = identity["atlas"]
    assert check["verdict"] == "pass" and "mean distance to the atlas face" in check["detail"]
    assert record["nearer_atlas"] and record["views_nearer_atlas"] == len(record["views"]) >= 3
    assert record["mean_to_atlas"] < 0.5 * record["mean_to_person"]
