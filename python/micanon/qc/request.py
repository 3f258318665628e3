"""What the pipeline asks QC to check: one participant session's outputs (the bridge call
``qc_outputs``), parsed and refused here, naming the bad field."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

METHODS = ("deface", "reface", "warpface")
# "scanner": not registered, masks through the shared scanner coordinates (an image with too
# little in common with the T1w, e.g. a TOF angiogram): shown as a warning, not a failure.
REGISTRATION_FLAGS = ("ok", "scanner", "poor")

_LABEL = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Registration:
    """How well the image was registered (from the caller): metric name, value, ok/poor flag."""

    metric: str
    value: float | None
    flag: str
    check: dict | None = None  # the fit check's verdict (witnesses, evidence, hard), for the reference's fit

    @property
    def hard(self) -> bool:
        """The fit put the face ROI inside the subject's own brain: refused whatever --qc-fail-ok says."""
        return bool(self.check and self.check.get("hard"))


@dataclass(frozen=True)
class QcItem:
    """One output to check.

    ``input``/``output`` are files on one native grid; ``output_name`` is the output's final path
    relative to the dataset's output_dir, a name for the record (``output`` is a temporary name); ``brain_voxels_changed`` and
    ``guard_voxels`` are the engine's own counts; ``brain_guard``/``face_roi`` are native masks
    (None when not available); ``head_affine`` maps the input's scanner RAS to atlas RAS (4x4);
    ``atlas_head`` is the atlas head on the input's grid (reface, warpface; None: not compared);
    ``warp`` the face warp's reach and smallest Jacobian (warpface; recorded, not judged here).
    """

    input: Path
    output: Path
    output_name: str
    method: str
    brain_voxels_changed: int
    guard_voxels: int
    brain_guard: Path | None
    face_roi: Path | None
    head_affine: np.ndarray | None
    registration: Registration
    atlas_head: Path | None = None
    warp: dict[str, float] | None = None


@dataclass(frozen=True)
class Reference:
    """The session's reference image (registered to the atlas; the others share its masks and
    warp) and why the pipeline chose it."""

    input: Path
    reason: str


@dataclass(frozen=True)
class QcRequest:
    """Every output of one participant session; figures go to ``figures_dir`` (inside ``output_dir``,
    which is the QC folder: the dataset's output_dir, or --qc-dir, or ``<output_dir>-qc`` for the
    raw layout; figure paths in the records are relative to it). With ``staging_dir`` the figure
    files are written there instead, under the same names, and the caller moves them into
    ``figures_dir`` once the records are back (a run killed during QC then leaves no input face
    renders in the QC folder). ``reference``: the session's reference, inside ``bids_dir`` or
    (``--t1w``) anywhere (None: no session, e.g. ``micanon qc``)."""

    output_dir: Path
    bids_dir: Path
    subject: str
    session: str | None
    figures_dir: Path
    items: list[QcItem]
    reference: Reference | None = None
    staging_dir: Path | None = None

    @property
    def write_dir(self) -> Path:
        """Where the figure files are written: ``staging_dir`` when given, else ``figures_dir``."""
        return self.staging_dir or self.figures_dir

    @classmethod
    def from_json(cls, request: dict[str, Any]) -> "QcRequest":
        """Parse the bridge request (see api.qc_outputs); raises ValueError naming the bad field."""
        subject = _label(request.get("subject"), "subject")
        session = None if request.get("session") is None else _label(request["session"], "session")
        output_dir = _absolute(request.get("output_dir"), "output_dir")
        figures_dir = _absolute(request.get("figures_dir"), "figures_dir")
        inside(figures_dir, output_dir, "figures_dir")
        staging_dir = None if request.get("staging_dir") is None else _absolute(request["staging_dir"], "staging_dir")
        bids_dir = _absolute(request.get("bids_dir"), "bids_dir")
        items = request.get("items")
        if not isinstance(items, list):
            raise ValueError("qc: items must be a list")
        parsed = [_item(entry, n) for n, entry in enumerate(items)]
        for n, entry in enumerate(parsed):
            inside(entry.input, bids_dir, f"items[{n}].input")  # records name inputs relative to bids_dir
        return cls(output_dir, bids_dir, subject, session, figures_dir, parsed, _reference(request.get("reference")),
                   staging_dir)


def inside(path: Path, folder: Path, name: str) -> str:
    """``path`` relative to ``folder`` as a POSIX path; ValueError if it leaves the folder."""
    relative = PurePosixPath(Path(os.path.relpath(path, folder)).as_posix())
    if relative.parts[:1] == ("..",) or str(relative) == ".":
        raise ValueError(f"qc: {name} {path} is not inside {folder}")
    return str(relative)


def reference_name(path: Path, bids_dir: Path) -> str:
    """How the records name a session's reference: relative to ``bids_dir`` like every input, or
    by its absolute path when it lies outside the dataset (a ``--t1w`` from elsewhere)."""
    try:
        return inside(path, bids_dir, "reference")
    except ValueError:
        return Path(path).as_posix()


def _label(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _LABEL.match(value):
        raise ValueError(f"qc: {name} must be a BIDS label (letters and digits), got {value!r}")
    return value


def _absolute(value: Any, name: str) -> Path:
    if not isinstance(value, str) or not os.path.isabs(value):
        raise ValueError(f"qc: {name} must be an absolute path, got {value!r}")
    return Path(value)


def _optional_path(value: Any, name: str) -> Path | None:
    return None if value is None else _absolute(value, name)


def _reference(entry: Any) -> Reference | None:
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("reason"), str):
        raise ValueError(f"qc: reference must be an object with input and reason, got {entry!r}")
    return Reference(_absolute(entry.get("input"), "reference.input"), entry["reason"])


def _item(entry: Any, n: int) -> QcItem:
    where = f"items[{n}]"
    if not isinstance(entry, dict):
        raise ValueError(f"qc: {where} must be an object")
    method = entry.get("method")
    if method not in METHODS:
        raise ValueError(f"qc: {where}.method must be one of {', '.join(METHODS)}, got {method!r}")
    name = entry.get("output_name")
    if not isinstance(name, str) or not name or "\\" in name or PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
        raise ValueError(f"qc: {where}.output_name must be a relative POSIX path (the output's name in output_dir), got {name!r}")
    registration = entry.get("registration") or {}
    flag = registration.get("flag")
    if flag not in REGISTRATION_FLAGS:
        raise ValueError(f"qc: {where}.registration.flag must be one of {', '.join(REGISTRATION_FLAGS)}, got {flag!r}")
    value = registration.get("value")
    head_affine = entry.get("head_affine")
    if head_affine is not None:
        head_affine = np.asarray(head_affine, dtype=np.float64)
        if head_affine.shape != (4, 4):
            raise ValueError(f"qc: {where}.head_affine must be a 4x4 matrix")
    return QcItem(
        input=_absolute(entry.get("input"), f"{where}.input"),
        output=_absolute(entry.get("output"), f"{where}.output"),
        output_name=name,
        method=method,
        brain_voxels_changed=int(entry.get("brain_voxels_changed", 0)),
        guard_voxels=int(entry.get("guard_voxels", 0)),
        brain_guard=_optional_path(entry.get("brain_guard"), f"{where}.brain_guard"),
        face_roi=_optional_path(entry.get("face_roi"), f"{where}.face_roi"),
        head_affine=head_affine,
        registration=Registration(str(registration.get("metric", "")), None if value is None else float(value), flag,
                                  registration.get("check") if isinstance(registration.get("check"), dict) else None),
        atlas_head=_optional_path(entry.get("atlas_head"), f"{where}.atlas_head"),
        warp=_warp(entry.get("warp"), f"{where}.warp"),
    )


def _warp(value: Any, name: str) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(value.get(k), (int, float)) for k in ("max_mm", "min_jacobian")):
        raise ValueError(f"qc: {name} must be {{max_mm, min_jacobian}} (numbers) or null, got {value!r}")
    return {"max_mm": float(value["max_mm"]), "min_jacobian": float(value["min_jacobian"])}
