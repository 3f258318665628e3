"""Is the reference's fit to the atlas trustworthy? Judged by evidence that does not come through it.

Three witnesses, each "ok", "poor" or "abstain" (cannot tell on this head):

- **brain**: the atlas brain carried to native space against the subject's own brain
  (:mod:`micanon.anonymize.native_brain`): their Dice overlap, and how far the subject's brain
  reaches beyond the carried atlas brain on the face side (within ``FACE_SIDE_MM`` of the face
  ROI), where a misfit would cut. Abstains without a trusted native brain.
- **eyes**: the eye globes found in the image itself (:mod:`micanon.landmarks`) against where the
  fit puts the atlas's eyes. Abstains where the image shows no eyes (a slab, thick slices).
- **similarity**: the fit's own score (NCC with the T1w template, or head overlap for another
  contrast): one witness, not the judge, since a head unlike the template scores low when fitted
  well.

The rule (calibrated in docs/brain-guard.md): a fit that puts the face ROI deep inside the
subject's own brain (more than ``MAX_FACE_IN_BRAIN_ML`` deeper than ``FACE_DEPTH_MM``) is wrong,
whatever else is said, and its outputs are refused outright (``hard``). Otherwise the fit is poor when most witnesses that
speak say poor; a tie goes to the first speaking witness in the order brain, eyes, similarity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from micanon.anonymize.masks import FACE_FRACTION, AtlasImages, pull_fraction
from micanon.anonymize.native_brain import NativeBrain
from micanon.landmarks import Eyes
from micanon.space.grid import dilate_mm, zooms_of
from micanon.space.registration import Quality
from micanon.space.similarity import dice

# brain witness: poor below this Dice of the carried atlas brain with the subject's own brain ...
MIN_BRAIN_DICE = 0.85
# ... or when the subject's brain reaches more than this beyond the carried atlas brain near the
# face (the guard still holds it, but the fit is that far off where the face ROI sits).
MAX_BRAIN_EXCESS_MM = 12.0
FACE_SIDE_MM = 30.0
# eyes witness: poor when the carried atlas eyes sit further than this from the eyes found.
MAX_EYE_ERROR_MM = 12.0
# Face ROI deeper than FACE_DEPTH_MM inside the subject's own brain, beyond this volume: the fit is
# wrong (the guard took those voxels back, but the rest of the face ROI was placed by the same
# wrong fit). A shallower overlap is anatomy, not a misfit: a frontal pole reaching further than
# the atlas's meets the face ROI's edge at a good fit (the guard then keeps it).
FACE_DEPTH_MM = 5.0
MAX_FACE_IN_BRAIN_ML = 0.5

WITNESS_ORDER = ("brain", "eyes", "similarity")


@dataclass(frozen=True)
class FitCheck:
    """The verdict on a reference's fit and the evidence behind it (JSON-able by ``as_dict``)."""

    flag: str  # "ok" or "poor"
    hard: bool  # the fit put the face ROI inside the brain: outputs refused even with --qc-fail-ok
    witnesses: dict[str, str]
    evidence: dict[str, float | int | str | None] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict:
        return {"flag": self.flag, "hard": self.hard, "witnesses": dict(self.witnesses),
                "evidence": dict(self.evidence), "reason": self.reason}


def brain_evidence(brain: NativeBrain, atlas: AtlasImages, native_to_atlas: np.ndarray) -> dict:
    """Compare the atlas brain and face ROI carried through the fit with the subject's own brain,
    on the native brain's grid (reference scanner space)."""
    shape, affine = brain.mask.shape, brain.affine
    atlas_brain = pull_fraction(atlas.brain, atlas.affine, shape, affine, native_to_atlas, atlas.boxes["brain"]) >= 0.5
    face_roi = pull_fraction(atlas.face_roi, atlas.affine, shape, affine, native_to_atlas, atlas.boxes["face_roi"]) >= FACE_FRACTION
    zooms = zooms_of(affine)
    voxel_ml = float(np.prod(zooms)) / 1000.0
    own = brain.mask
    near_face = dilate_mm(face_roi, zooms, FACE_SIDE_MM) & own & ~atlas_brain
    excess = 0.0
    if near_face.any():
        excess = float(ndimage.distance_transform_edt(~atlas_brain, sampling=zooms)[near_face].max())
    depth = ndimage.distance_transform_edt(own, sampling=zooms)
    return {
        "brain_containment": round(float((atlas_brain & own).sum()) / max(int(atlas_brain.sum()), 1), 4),
        "brain_dice": round(dice(atlas_brain, own), 4),
        "brain_excess_mm": round(excess, 1),
        "face_roi_in_brain_ml": round(float((face_roi & own).sum()) * voxel_ml, 2),
        "face_roi_deep_in_brain_ml": round(float((face_roi & (depth > FACE_DEPTH_MM)).sum()) * voxel_ml, 2),
    }


def eye_error_mm(found: Eyes, atlas_eyes: Eyes, native_to_atlas: np.ndarray) -> float:
    """Mean distance (mm, native space) between the eyes found and the atlas eyes carried back,
    each found eye matched to the nearer carried one (no left/right claim either way)."""
    atlas_to_native = np.linalg.inv(native_to_atlas)
    carried = atlas_eyes.centres @ atlas_to_native[:3, :3].T + atlas_to_native[:3, 3]
    straight = np.linalg.norm(found.centres - carried, axis=1).mean()
    crossed = np.linalg.norm(found.centres - carried[::-1], axis=1).mean()
    return float(min(straight, crossed))


def judge(
    similarity: Quality,
    brain: NativeBrain | None,
    brain_facts: dict | None,
    found_eyes: Eyes | None,
    atlas_eyes: Eyes | None,
    native_to_atlas: np.ndarray,
) -> FitCheck:
    """The verdict on a reference's fit from its witnesses (see the module's rule)."""
    witnesses: dict[str, str] = {}
    evidence: dict = {"similarity_metric": similarity.metric, "similarity": round(float(similarity.value), 4)}
    witnesses["similarity"] = "ok" if similarity.flag == "ok" else "poor"
    hard = False
    reasons = []
    if brain is not None and brain.ok and brain_facts is not None:
        evidence.update(brain_facts)
        poor_brain = brain_facts["brain_dice"] < MIN_BRAIN_DICE or brain_facts["brain_excess_mm"] > MAX_BRAIN_EXCESS_MM
        witnesses["brain"] = "poor" if poor_brain else "ok"
        if brain_facts["face_roi_deep_in_brain_ml"] > MAX_FACE_IN_BRAIN_ML:
            hard = True
            reasons.append(f"the fit puts {brain_facts['face_roi_deep_in_brain_ml']:.1f} ml of the face ROI more than "
                           f"{FACE_DEPTH_MM:.0f} mm inside the brain")
    else:
        witnesses["brain"] = "abstain"
        evidence["brain_note"] = "no trusted native brain" if brain is None else (brain.note or "not trusted for this contrast")
    if found_eyes is not None and atlas_eyes is not None:
        error = eye_error_mm(found_eyes, atlas_eyes, native_to_atlas)
        evidence["eye_error_mm"] = round(error, 1)
        witnesses["eyes"] = "poor" if error > MAX_EYE_ERROR_MM else "ok"
    else:
        witnesses["eyes"] = "abstain"
    speaking = [w for w in WITNESS_ORDER if witnesses[w] != "abstain"]
    poor = [w for w in speaking if witnesses[w] == "poor"]
    if 2 * len(poor) == len(speaking):
        verdict_poor = witnesses[speaking[0]] == "poor"
    else:
        verdict_poor = 2 * len(poor) > len(speaking)
    if verdict_poor and not hard:
        reasons.append("witnesses say poor: " + ", ".join(poor))
    flag = "poor" if hard or verdict_poor else "ok"
    return FitCheck(flag=flag, hard=hard, witnesses=witnesses, evidence=evidence, reason="; ".join(reasons))
