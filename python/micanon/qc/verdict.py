"""The verdict of one output: its status and reason, from the evidence its checks recorded.

This is the one place that decides whether an output passed QC; the checks only record evidence
and their own pass, and the pipeline (src/pipeline/session.ts) only applies the commit policy.
"""

from __future__ import annotations

from typing import Any


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
    if not checks["face"]["pass"]:
        parts.append(f"{method}: {checks['face']['detail']}")
    if not checks["registration"]["pass"]:
        reg = checks["registration"]
        value = "" if reg["value"] is None else f" {reg['metric']} {reg['value']:.3f}"
        why = (reg.get("check") or {}).get("reason")
        parts.append(f"registration poor{value}" + (f" ({why})" if why else ""))
    return "; ".join(parts) or None
