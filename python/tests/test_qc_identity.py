"""The reface/warpface identity check (micanon.qc.identity) on the average head."""

from __future__ import annotations

import pytest

from micanon import face
from micanon.qc.identity import DEFACE_TOLERANCE, identity_check, no_more_identifiable_than_deface
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
