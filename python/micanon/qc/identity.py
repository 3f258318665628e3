"""The reface/warpface face check: the output's face is no longer the input's person.

Rule (numbers behind it: docs/qc-calibration.md): the identity distance between input and output
faces is above ``face.IDENTITY_THRESHOLD`` in every view where the input shows a face (the output
described inside the input's box as well as its own); a view where removing the input's face
moves the descriptor no further than the threshold cannot witness and does not decide;
inconclusive when no view is left. And, relative to what is accepted (issue 21): with the input's
own defaced control, the output is no more identifiable than deface, within ``DEFACE_TOLERANCE``:
its mean distance over the deciding views is at least the control's mean there, less the tolerance.

And nearer the atlas than the person (issue 21): the atlas head the engine pulled onto the input's
grid through the fit (``QcItem.atlas_head``: what reface pastes, over the whole head) is rendered by
the input's camera; over the deciding views, the output's mean distance to that atlas face must be
below its mean distance to the input's face. The mean, as for deface: one render's noise must not
decide alone. It decides for reface and warpface (``ATLAS_DECIDES``): warpface aims its face at the
same atlas face, and pastes the atlas's ears and scalp around it as reface does. On
persons A and B it flips no verdict: reface is 0.31-0.33 nearer the atlas; A's warpface, nearer its
person, already fails the absolute rule (docs/identity.md has the figures).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from micanon import face
from micanon.anonymize.methods import background_value, deface
from micanon.qc.face_checks import face_result
from micanon.qc.seeing import Head, view_name, views_text

# "No more identifiable than deface": the output's mean identity distance over the deciding views
# may fall short of the defaced control's by at most this much. The descriptor's own noise from
# one render to the next (a 1 mm shift of the cut, a different noise draw) is ~0.02-0.03 on
# persons A and B; the accepted reface outputs sit 0.01 (B) and 0.02 (A) under their controls, the
# warpface of B 0.07 (docs/identity.md has the figures).
DEFACE_TOLERANCE = 0.05
# The methods for which "nearer the atlas than the person" decides the face check (for any other
# it would only be recorded): both aim at the atlas face.
ATLAS_DECIDES = ("reface", "warpface")


def identity_check(before: Head, after: Head | None, unseen: str = "",
                   face_removed: Head | None = None, atlas: Head | None = None,
                   atlas_decides: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reface/warpface face check and the identity record: (face, identity).

    Descriptors are compared in every view where the input shows a face, the output's inside
    the input's box and inside its own best box (the nearer counts); the output is searched by
    HOG in every view (cheap, shown in the report) and by the CNN only where HOG finds nothing.

    ``face_removed`` is the input with its face ROI set to background (as deface leaves it),
    described inside the input's boxes: a positive control per view. A view where even removing
    the face does not move the descriptor past the threshold cannot witness whether the face is
    still this person's (on the whole-face average head the right profile moves 0.16 when its face
    is removed): it is recorded (``views_blind``) but does not decide. Without a control every
    view with an input face decides; with no view left, the check is inconclusive.

    ``atlas`` is the atlas head on the input's grid rendered by the input's camera
    (:func:`atlas_head`): whenever a view decides, the output's distances to it and to the input
    over the deciding views are recorded (``identity.atlas``, :func:`nearer_atlas_than_person`)
    and, with ``atlas_decides``, the output fails when it is not nearer the atlas.
    """
    rule = "identity distance above threshold in every view where the input shows a face (not the same person)"
    threshold = face.IDENTITY_THRESHOLD
    if after is None:
        identity = {"distance": None, "threshold": threshold, "model": face.MODEL_VERSION, "per_view": {}, "views_compared": 0}
        return face_result("inconclusive", f"inconclusive: {rule}", unseen), identity
    for view in after.renders.views:
        after.detections(view, "hog")
    mine = {v: d for v in before.renders.views if (d := before.descriptor(v)) is not None}
    # Input and output are rendered from one camera on one head frame, so the input's face box
    # frames the output's face as well: every view with an input face is compared, whether or not
    # a detector still finds the output's face (face.paired_distance).
    per_view: dict[str, float] = {}
    boxes: dict[str, str] = {}
    for view, described in mine.items():
        per_view[view], boxes[view] = face.paired_distance(
            described, after.renders.views[view], before.best(view),
            after.detections(view, "hog") or after.detections(view, "cnn"),
        )
    removed: dict[str, float] = {}
    if face_removed is not None and face_removed.renders.views:
        rule = ("identity distance above threshold in every view where the input shows a face and removing that face"
                " moves the descriptor past the threshold (not the same person)")
        removed = {v: face.paired_distance(d, face_removed.renders.views[v], before.best(v), [])[0] for v, d in mine.items()}
    witnesses = [v for v in per_view if not removed or removed[v] > threshold]
    blind = [v for v in per_view if v not in witnesses]
    identity = {
        "distance": min(per_view[v] for v in witnesses) if witnesses else None,
        "threshold": threshold,
        "model": face.MODEL_VERSION,
        "per_view": {view_name(v): d for v, d in sorted(per_view.items())},
        "views_compared": len(witnesses),
        "boxes": {view_name(v): b for v, b in sorted(boxes.items())},
    }
    if removed:
        identity["face_removed"] = {"distance": min(removed.values()), "per_view": {view_name(v): d for v, d in sorted(removed.items())}}
        identity["views_blind"] = [view_name(v) for v in blind]
    if not per_view:
        return face_result("inconclusive", f"inconclusive: {rule}; the input shows no face in any view", "nothing to compare"), identity
    if not witnesses:
        detail = (f"removing the face moves the descriptor by at most {max(removed.values()):.3f} (<= {threshold:.3f}) in the"
                  f" views with an input face ({views_text(blind)}): none can tell this face from none")
        return face_result("inconclusive", f"inconclusive: {rule}", detail), identity
    nearer = None
    if atlas is not None:
        # Recorded whatever the other rules say (a failed warpface's figures are wanted too).
        to_atlas, atlas_boxes = distances_to_atlas(before, after, atlas, witnesses)
        if to_atlas:
            nearer = nearer_atlas_than_person(to_atlas, {v: per_view[v] for v in to_atlas})
            identity["atlas"] = {**nearer, "decides": atlas_decides,
                                 "boxes": {view_name(v): b for v, b in sorted(atlas_boxes.items())}}
        else:
            identity["atlas"] = {"nearer_atlas": None, "decides": atlas_decides,
                                 "reason": "the atlas head shows no surface in this camera"}
    closest = min(witnesses, key=lambda v: per_view[v])
    distance = per_view[closest]
    ignored = f"; not deciding, as removing the face moves them less: {views_text(blind)}" if blind else ""
    if distance <= threshold:
        yardstick = f" (this input with its face removed: {removed[closest]:.3f} there)" if removed else ""
        detail = f"distance {distance:.3f} <= {threshold:.3f} in {views_text([closest])}{yardstick}: the output face still matches the input's{ignored}"
        return face_result("fail", rule, detail), identity
    detail = f"min distance {distance:.3f} > {threshold:.3f} over {len(witnesses)} view(s) ({views_text(witnesses)}){ignored}"
    if removed:
        relative = no_more_identifiable_than_deface({v: per_view[v] for v in witnesses}, {v: removed[v] for v in witnesses})
        identity["relative"] = relative
        mean, control = relative["mean_distance"], relative["deface_mean_distance"]
        rule += f"; and no more identifiable than deface (mean distance over those views >= the defaced control's - {DEFACE_TOLERANCE})"
        if not relative["pass"]:
            detail = (f"mean distance {mean:.3f} over {views_text(witnesses)} is more than {DEFACE_TOLERANCE} below this input"
                      f" defaced ({control:.3f}): more identifiable than deface, though each view is above {threshold:.3f}")
            return face_result("fail", rule, detail), identity
        detail += f"; mean {mean:.3f} vs defaced {control:.3f}"
    if nearer is not None:
        means = (f"mean distance to the atlas face {nearer['mean_to_atlas']:.3f}, to the input's {nearer['mean_to_person']:.3f}"
                 f" over {views_text(witnesses)}")
        if atlas_decides:
            rule += "; and nearer the atlas face than the input's (mean distance over those views)"
            if not nearer["nearer_atlas"]:
                return face_result("fail", rule, f"{means}: nearer the person than the atlas"), identity
        detail += f"; {means}"
    return face_result("pass", rule, detail), identity


def distances_to_atlas(before: Head, after: Head, atlas: Head, views: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """The output's identity distance to the atlas face in each of ``views`` (render names), and
    which boxes decided it.

    The atlas face is described inside its own best box where a detector finds one, else inside
    the input's (one camera, one head frame: it frames the atlas face too); the output is
    described inside that box and its own (:func:`face.paired_distance`), as against the input.
    """
    distances: dict[str, float] = {}
    boxes: dict[str, str] = {}
    for view in views:
        if view not in atlas.renders.views:
            continue
        own = atlas.best(view)
        box = own or before.best(view)
        reference = face.descriptor(atlas.renders.views[view], box)
        distances[view], which = face.paired_distance(
            reference, after.renders.views[view], box, after.detections(view, "hog") or after.detections(view, "cnn"))
        boxes[view] = f"atlas {'own ' + own.detector if own else 'input'} box, output {which}"
    return distances, boxes


def nearer_atlas_than_person(to_atlas: dict[str, float], to_person: dict[str, float]) -> dict[str, Any]:
    """"Nearer the atlas than the person" over the deciding views: {per_view, views,
    mean_to_atlas, mean_to_person, views_nearer_atlas, nearer_atlas}. ``to_atlas``: the output's
    identity distance to the atlas face per view; ``to_person``: to the input's face, same views.
    The means decide (one view's descriptor noise must not decide alone); ``views_nearer_atlas``
    counts the views where the atlas is the nearer, for the record."""
    views = list(to_atlas)
    mean_atlas = float(np.mean([to_atlas[v] for v in views]))
    mean_person = float(np.mean([to_person[v] for v in views]))
    return {
        "per_view": {view_name(v): {"to_atlas": to_atlas[v], "to_person": to_person[v]} for v in sorted(views)},
        "views": [view_name(v) for v in views],
        "mean_to_atlas": mean_atlas,
        "mean_to_person": mean_person,
        "views_nearer_atlas": sum(to_atlas[v] < to_person[v] for v in views),
        "nearer_atlas": mean_atlas < mean_person,
    }


def atlas_head(head: Head, atlas_volume: np.ndarray, head_affine: np.ndarray | None) -> Head:
    """The atlas head on ``head``'s grid (``atlas_volume``, atlas intensities) rendered by
    ``head``'s camera (same grid, same head affine, framed on ``head``'s centroid and radius, so
    the input's face boxes frame it too); its skin level is its own, as intensities are the atlas's."""
    return Head(head.stored, head_affine, volume=np.asarray(atlas_volume, dtype=np.float32), camera=head.renders.camera)


def no_more_identifiable_than_deface(distances: dict[str, float], control: dict[str, float]) -> dict[str, Any]:
    """The relative identity rule over the deciding views: {mean_distance, deface_mean_distance,
    tolerance, pass}. ``distances``: the output's identity distance per view; ``control``: the
    input's defaced control's, over the same views. The mean, not the minimum: one view's
    descriptor noise must not decide alone (the absolute rule already holds every view)."""
    mean = float(np.mean(list(distances.values())))
    reference = float(np.mean([control[v] for v in distances]))
    return {"mean_distance": mean, "deface_mean_distance": reference, "tolerance": DEFACE_TOLERANCE,
            "pass": mean >= reference - DEFACE_TOLERANCE}


def face_removed_head(head: Head, face_roi: np.ndarray, head_affine: np.ndarray | None) -> Head:
    """``head`` with its face ROI set to background, as deface leaves it, rendered like ``head``
    (same frame, same skin level): the identity check's control."""
    volume = np.asarray(head.nifti.dataobj, dtype=np.float32)
    return Head(head.stored, head_affine, threshold=head.renders.skin.value,
                volume=deface(volume, face_roi, background_value(volume)))
