"""The verdict of one output: its status, its reason and whether a failure is hard, from the
evidence its checks recorded, and what an image inherits from its session's reference.

This is the one place that decides whether an output passed QC. The checks only record their
evidence and their own pass; the pipeline (src/pipeline/session.ts) only applies the commit
policy to the verdict: --qc-fail-ok writes a failure that is not hard, nothing else does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """``status`` PASS or FAILED; ``reason`` names every failed check (None when PASS); ``hard``:
    a failure --qc-fail-ok may not override (the brain or header proof failed, which includes a fit
    that put the face ROI inside the brain)."""

    status: str
    reason: str | None
    hard: bool


def verdict(checks: dict[str, Any], method: str) -> Verdict:
    """The verdict of one output of ``method`` from its record's ``checks``."""
    reason = failure_reason(checks, method)
    hard = not checks["brain_voxels_changed"]["pass"] or not checks["header"]["pass"]
    return Verdict("FAILED" if reason else "PASS", reason, hard)


def give_verdicts(records: list[dict[str, Any]], reference: dict[str, str] | None) -> None:
    """Give every record of one session its verdict, in place: status, reason, hard, and
    ``output`` None when FAILED (the pipeline does not rename it into place: it was not written).

    ``reference``: the session's reference ({"input": its name by
    :func:`~micanon.qc.request.reference_name`, "reason"}), which every record then names; an
    image whose face check is inconclusive first inherits a failed face check of the reference
    by the same method (:func:`inherited_face`).
    """
    reference_faces: dict[str, dict[str, Any]] = {}
    for record in records:
        if reference is not None and record["input"] == reference["input"]:
            reference_faces.setdefault(record["method"], record["checks"]["face"])
    for record in records:
        checks = record["checks"]
        if reference is not None and record["input"] != reference["input"]:
            inherited = inherited_face(checks["face"], reference_faces.get(record["method"]), reference["input"])
            if inherited is not None:
                checks["face"] = inherited
        decided = verdict(checks, record["method"])
        record.update({
            "output": None if decided.status == "FAILED" else record["output"],
            "status": decided.status,
            "reason": decided.reason,
            "hard": decided.hard,
        })
        if reference is not None:
            record["reference"] = dict(reference)


def failure_reason(checks: dict[str, Any], method: str) -> str | None:
    """One line naming every failed check, or None when all passed."""
    parts = []
    brain = checks["brain_voxels_changed"]
    if not brain["pass"]:
        changed = max(brain["value"], brain["engine_value"])
        parts.append(brain["face_roi_in_brain"] if changed == 0 and "face_roi_in_brain" in brain
                     else f"{changed} brain voxels changed")
    if not checks["header"]["pass"]:
        parts.append("header changed: " + "; ".join(checks["header"]["differences"]))
    face = checks["face"]
    if not face["pass"]:
        if "inherited_from" in face:
            reference = PurePosixPath(face["inherited_from"]).name
            parts.append(f"{method}: inconclusive here, and the reference ({reference}) still shows the person after {method}")
        else:
            parts.append(f"{method}: {face['detail']}")
    if not checks["registration"]["pass"]:
        reg = checks["registration"]
        value = "" if reg["value"] is None else f" {reg['metric']} {reg['value']:.3f}"
        why = (reg.get("check") or {}).get("reason")
        parts.append(f"registration poor{value}" + (f" ({why})" if why else ""))
    return "; ".join(parts) or None


def inherited_face(face: dict[str, Any], reference_face: dict[str, Any] | None, reference: str) -> dict[str, Any] | None:
    """The face check an image inherits from its session's reference, or None when it keeps its own.

    An image whose own face check is inconclusive (no face the detectors trust: thick slices,
    partial coverage, an angiogram) shares the reference's masks and warp, so it cannot be better
    anonymized than the reference by the same method: if the reference's face check (by that
    method, ``reference_face``) failed, so does this one. ``reference`` is the reference's name
    (:func:`~micanon.qc.request.reference_name`); the caller passes the reference's own face
    check only for other images.
    """
    if face.get("verdict") != "inconclusive" or reference_face is None or reference_face["pass"]:
        return None
    name = PurePosixPath(reference).name
    return {
        **face,
        "pass": False,
        "verdict": "fail",
        "detail": f"{face['detail']}; the reference {name} failed this check by the same method, and this image shares its masks and warp",
        "inherited_from": reference,
    }


def image_alone_reason(checks: dict[str, Any], method: str) -> str | None:
    """``micanon qc`` of an image without its original: the face check and whether the views were
    upright (the registration) are all it can fail; one line naming them, or None."""
    parts = []
    if checks["face"]["verdict"] == "fail":
        parts.append(f"{method}: {checks['face']['detail']}")
    registration = checks["registration"]
    if not registration["pass"]:
        parts.append(f"registration poor {registration['metric']} {registration['value']:.3f}: the views may not be upright")
    return "; ".join(parts) or None
