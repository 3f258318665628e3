"""The fit check's rule, on evidence made in code: the witnesses vote, the brain can veto outright."""

from __future__ import annotations

import numpy as np
import pytest

from micanon.anonymize import fit_check
from micanon.anonymize.native_brain import NativeBrain
from micanon.landmarks import Eyes
from micanon.space.registration import Quality

GOOD_SIMILARITY = Quality("ncc", 0.85, 1.0, "ok")
POOR_SIMILARITY = Quality("ncc", 0.70, 1.0, "poor")
BRAIN = NativeBrain(np.ones((2, 2, 2), bool), np.eye(4), "robex", 1.0, 1500.0, True, "")
GOOD_BRAIN = {"brain_dice": 0.93, "brain_excess_mm": 5.0, "face_roi_in_brain_ml": 0.0, "face_roi_deep_in_brain_ml": 0.0}
POOR_BRAIN = {"brain_dice": 0.70, "brain_excess_mm": 20.0, "face_roi_in_brain_ml": 0.0, "face_roi_deep_in_brain_ml": 0.0}
FACE_IN_BRAIN = {"brain_dice": 0.90, "brain_excess_mm": 8.0, "face_roi_in_brain_ml": 6.0, "face_roi_deep_in_brain_ml": 4.0}
# a frontal pole reaching into the face ROI's edge at a good fit: anatomy, not a misfit
FACE_AT_BRAIN_EDGE = {"brain_dice": 0.93, "brain_excess_mm": 9.0, "face_roi_in_brain_ml": 3.3, "face_roi_deep_in_brain_ml": 0.0}


def eyes_at(*centres) -> Eyes:
    centres = np.asarray(centres, float)
    return Eyes(centres=centres, radii_mm=np.array([11.0, 11.0]), score=0.9, polarity="dark", contrast=1.0,
                distance_mm=float(np.linalg.norm(centres[0] - centres[1])), depth_mm=np.array([15.0, 15.0]),
                symmetry=1.0, forward=np.array([0.0, 1.0, 0.0]), up=np.array([0.0, 0.0, 1.0]))


ATLAS_EYES = eyes_at((-30, 60, -30), (30, 60, -30))
NEAR_EYES = eyes_at((31, 62, -29), (-29, 61, -31))  # found in the other order: matched anyway
FAR_EYES = eyes_at((-30, 40, -10), (30, 40, -10))


def verdict(similarity, brain_facts, found):
    brain = BRAIN if brain_facts is not None else None
    return fit_check.judge(similarity, brain, brain_facts, found, ATLAS_EYES, np.eye(4))


@pytest.mark.parametrize(
    ("similarity", "brain", "eyes", "flag"),
    [
        (GOOD_SIMILARITY, GOOD_BRAIN, NEAR_EYES, "ok"),
        # a head unlike the template (an average head, a cut nose) scores low but fits well
        (POOR_SIMILARITY, GOOD_BRAIN, NEAR_EYES, "ok"),
        (POOR_SIMILARITY, GOOD_BRAIN, None, "ok"),  # tie: the brain decides
        (GOOD_SIMILARITY, POOR_BRAIN, None, "poor"),  # tie: the brain decides
        (GOOD_SIMILARITY, POOR_BRAIN, FAR_EYES, "poor"),
        (POOR_SIMILARITY, None, FAR_EYES, "poor"),
        (POOR_SIMILARITY, None, NEAR_EYES, "ok"),  # tie without a brain: the eyes decide
        (POOR_SIMILARITY, None, None, "poor"),  # only the similarity speaks
    ],
)
def test_witnesses_vote_and_ties_go_to_the_more_direct_evidence(similarity, brain, eyes, flag):
    check = verdict(similarity, brain, eyes)
    assert check.flag == flag, check
    assert not check.hard


def test_a_face_roi_inside_the_brain_is_refused_whatever_the_other_witnesses_say():
    check = verdict(GOOD_SIMILARITY, FACE_IN_BRAIN, NEAR_EYES)
    assert check.flag == "poor" and check.hard
    assert "inside the brain" in check.reason
    assert check.as_dict()["evidence"]["face_roi_deep_in_brain_ml"] == 4.0


def test_a_face_roi_meeting_the_brain_edge_is_anatomy_not_a_misfit():
    check = verdict(GOOD_SIMILARITY, FACE_AT_BRAIN_EDGE, NEAR_EYES)
    assert check.flag == "ok" and not check.hard


def test_an_untrusted_brain_abstains_and_says_why():
    unusable = NativeBrain(np.zeros((2, 2, 2), bool), np.eye(4), "robex", 1.0, 4000.0, False, "ROBEX's brain holds 4000 ml")
    check = fit_check.judge(GOOD_SIMILARITY, unusable, None, NEAR_EYES, ATLAS_EYES, np.eye(4))
    assert check.witnesses["brain"] == "abstain"
    assert "4000 ml" in check.evidence["brain_note"]
    assert check.flag == "ok"


def test_eye_error_follows_the_fit():
    shift = np.eye(4)
    shift[:3, 3] = (0.0, 0.0, 10.0)  # native -> atlas moves points up 10 mm: atlas eyes land 10 mm lower
    assert fit_check.eye_error_mm(ATLAS_EYES, ATLAS_EYES, shift) == pytest.approx(10.0)
    assert fit_check.eye_error_mm(NEAR_EYES, ATLAS_EYES, np.eye(4)) < 3.0
