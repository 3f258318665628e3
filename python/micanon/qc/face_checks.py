"""The deface face check: no face left, by the renders and by the face's landmarks in the volume.

Numbers behind the rule: docs/qc-calibration.md. No face may be found by
``face.DEFACE_CHECK_DETECTORS`` (the CNN) in any view of the output, and every eye and nose tip
found in the input volume itself must be removed. Inconclusive (not a failure) when neither the
CNN nor the volume shows a face in the input, or the input has no head surface (angiogram).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from micanon import face
from micanon.io import StoredImage
from micanon.landmarks import find_face_points, trusted_eyes
from micanon.qc.seeing import Head, views_text
from micanon.space.similarity import otsu_threshold

# A landmark counts as removed when this share of the voxels within LANDMARK_BALL_MM of it changed.
LANDMARK_REMOVED_SHARE = 0.8
LANDMARK_BALL_MM = {"eye": 5.0, "nose tip": 3.0}


def face_landmarks_removed(before: StoredImage, after: StoredImage, brain_guard: np.ndarray | None = None,
                           volume: np.ndarray | None = None) -> dict[str, Any]:
    """The eye globes and the nose tip found in the input volume itself (micanon.landmarks, no
    registration), and whether deface removed each: {found, removed, kept, ignored} (lists).

    A landmark is removed when at least ``LANDMARK_REMOVED_SHARE`` of the voxels within
    ``LANDMARK_BALL_MM`` of it (for the nose tip: of the tissue voxels, above the input's Otsu
    level) differ between input and output (native grid, volume 0). One
    inside ``brain_guard`` (native grid) is no face landmark, whatever its shape: it is ignored.
    ``volume``: the input's volume 0 in real units, where the caller already has it.
    """
    volume = before.real(0) if volume is None else volume
    eyes = trusted_eyes(volume, before.affine)
    points = [] if eyes is None else [("eye", eyes.centres[0]), ("eye", eyes.centres[1])]
    if eyes is not None:
        nose = find_face_points(volume, before.affine, eyes).nose_tip
        if nose is not None:
            points.append(("nose tip", nose))
    changed = before.volume_raw(0) != after.volume_raw(0)
    # Around the nose tip only tissue counts (its air was nothing to remove); a globe lies inside
    # the head, dark or bright, and counts whole.
    tissue = volume > otsu_threshold(volume[::2, ::2, ::2])[0]
    zooms = before.zooms
    to_voxel = np.linalg.inv(before.affine)
    out: dict[str, Any] = {"found": [], "removed": [], "kept": [], "ignored": []}
    for name, point in points:
        centre = to_voxel[:3, :3] @ point + to_voxel[:3, 3]
        nearest = tuple(np.clip(np.round(centre).astype(int), 0, np.asarray(before.shape3d) - 1))
        if brain_guard is not None and brain_guard[nearest]:
            out["ignored"].append(f"{name} at ({', '.join(f'{c:.0f}' for c in point)}) mm: inside the brain guard")
            continue
        reach = np.ceil(LANDMARK_BALL_MM[name] / zooms).astype(int)
        lo = np.maximum(np.floor(centre).astype(int) - reach, 0)
        hi = np.minimum(np.ceil(centre).astype(int) + reach + 1, before.shape3d)
        if np.any(hi <= lo):
            continue
        grid = np.indices(tuple(hi - lo)).reshape(3, -1).T + lo
        inside = np.linalg.norm((grid - centre) * zooms, axis=1) <= LANDMARK_BALL_MM[name]
        ball = tuple(grid[inside].T)
        counted = tissue[ball] if name == "nose tip" else np.ones(len(ball[0]), bool)
        if not counted.any():
            continue
        share = float(changed[ball][counted].mean())
        label = f"{name} at ({', '.join(f'{c:.0f}' for c in point)}) mm, {100 * share:.0f}% removed"
        out["found"].append(label)
        out["removed" if share >= LANDMARK_REMOVED_SHARE else "kept"].append(label)
    return out


def deface_check(before: Head, after: Head | None, unseen: str = "",
                 landmarks: dict[str, Any] | None = None) -> dict[str, Any]:
    """The deface face check: {pass, verdict, rule, detail, evidence}, verdict pass / fail / inconclusive.

    Two kinds of evidence: the CNN face detector on renders of input and output (it searches the
    output only when it found a face in the input: without one, the absence of a face after
    deface proves nothing), and the face's landmarks found in the input volume itself
    (``landmarks``, :func:`face_landmarks_removed`). A landmark that deface left in place fails
    the check whatever the renders say; where the CNN saw no face in the input, the landmarks
    decide; with neither, the check is inconclusive. ``evidence`` names what decided.
    """
    rule = "no face found by the CNN detector in any view after deface, and every eye and nose tip found in the input volume removed"
    landmarks = landmarks or {"found": [], "removed": [], "kept": []}
    seen = [] if after is None else [v for v in before.renders.views if any(before.detections(v, d) for d in face.DEFACE_CHECK_DETECTORS)]
    still = [v for v in after.renders.views if any(after.detections(v, d) for d in face.DEFACE_CHECK_DETECTORS)] if seen else []
    found_face = f"a face is still found in {views_text(still)} (input: {views_text(seen)})" if still else ""
    if landmarks["kept"]:
        detail = f"deface left {'; '.join(landmarks['kept'])}" + (f"; {found_face}" if found_face else "")
        return face_result("fail", rule, detail, "landmarks" + (" and renders" if found_face else ""))
    if seen:
        if still:
            return face_result("fail", rule, found_face, "renders")
        found = f"; landmarks removed: {'; '.join(landmarks['removed'])}" if landmarks["removed"] else ""
        return face_result("pass", rule, f"input face in {views_text(seen)}; none in the {len(after.renders.views)} output views{found}",
                     "renders" + (" and landmarks" if found else ""))
    if landmarks["removed"]:
        why = unseen or "the CNN finds no face in the input renders"
        return face_result("pass", rule, f"{why}; landmarks found in the input volume and removed: {'; '.join(landmarks['removed'])}",
                     "landmarks")
    if after is None:
        return face_result("inconclusive", f"inconclusive: {rule}", f"{unseen}; no eyes found in the volume", "none")
    hog = [v for v in before.renders.views if before.detections(v, "hog")]
    return face_result(
        "inconclusive",
        f"inconclusive: {rule}, but the CNN finds no face in the input and no eyes are found in its volume",
        f"input face views: CNN none, HOG {views_text(hog)}; output not searched",
        "none",
    )


def face_result(verdict: str, rule: str, detail: str, evidence: str | None = None) -> dict[str, Any]:
    """A face check as the record holds it: {pass, verdict, rule, detail[, evidence]}; only "fail" does not pass."""
    out = {"pass": verdict != "fail", "verdict": verdict, "rule": rule, "detail": detail}
    return out if evidence is None else {**out, "evidence": evidence}
