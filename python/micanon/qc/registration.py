"""The registration check: the caller judged the fit; "poor" fails, "scanner" (not registered,
masks through scanner coordinates) passes and is shown as a warning."""

from __future__ import annotations

from typing import Any

from micanon.qc.request import Registration


def registration_check(registration: Registration) -> dict[str, Any]:
    """The record's registration check: {metric, value, flag, pass[, check]} (``check``: the fit
    check of the session's reference, when the caller sent one)."""
    return {
        "metric": registration.metric,
        "value": registration.value,
        "flag": registration.flag,
        "pass": registration.flag in ("ok", "scanner"),
        **({"check": registration.check} if registration.check else {}),
    }
