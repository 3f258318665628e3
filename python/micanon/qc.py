"""Per-output quality control: each anonymized image kept its brain and header and lost its face.

Spaces. An output shares its input's voxel grid and scanner space; the native brain guard and
face ROI masks the caller passes are on that grid too. Surface renders and slices are drawn in
the viewing frame of :mod:`micanon.render` (scanner RAS turned by the rotation of
``head_affine``, scanner -> atlas), so every head is seen upright.

Checks, per output (numbers behind the face rules: docs/qc-calibration.md):

- brain: raw stored values of input file vs output file inside the brain guard, bit for bit
  (re-read from disk, independent of the count the engine reported, which must be 0 too);
- header: shape, affine, qform/sform and their codes, stored dtype, scl_slope/scl_inter, voxel
  sizes and units equal to the input's;
- face, deface: no face found by ``face.DEFACE_CHECK_DETECTORS`` (the CNN) in any view of the
  output. Inconclusive (not a failure) when the CNN finds no face in the input either, or the
  input has no head surface (angiogram);
- face, reface/warpface: identity distance between input and output faces above
  ``face.IDENTITY_THRESHOLD`` in every view where the input shows a face (the output described
  inside the input's box as well as its own, :func:`identity_check`); inconclusive when no view does;
- registration: judged by the caller; "poor" fails, "scanner" (not registered, scanner coordinates) warns.

Every input is read, rendered and searched for faces once per call, whatever the number of its
outputs. Record view names are the report's (``REPORT_VIEWS``), render view names are
:data:`micanon.render.VIEWS`'s.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import nibabel as nib
import numpy as np
import scipy.ndimage as ndi
from PIL import Image

from micanon import face, render
from micanon.anonymize import guard
from micanon.io import StoredImage, read_image
from micanon.landmarks import find_face_points, trusted_eyes
from micanon.space.similarity import otsu_threshold
from micanon.anonymize.methods import background_value, deface

METHODS = ("deface", "reface", "warpface")
# "scanner": not registered, masks through the shared scanner coordinates (an image with too
# little in common with the T1w, e.g. a TOF angiogram): shown as a warning, not a failure.
REGISTRATION_FLAGS = ("ok", "scanner", "poor")

# Render view -> view name in QC records (src/qc/records.ts RENDER_VIEWS and its labels);
# views the report does not name keep their render name and are shown after the named ones.
REPORT_VIEWS = {
    "front": "front",
    "left45": "left34",
    "right45": "right34",
    "left90": "left",
    "right90": "right",
    "front_low": "low",
    "left_low": "left_low",
    "right_low": "right_low",
    "front_high": "high",
}

# The CNN looks at renders shrunk to this size (px): it finds a face in the same views at 140-320
# px and a quarter of the cost at 160 (docs/qc-calibration.md). HOG and the face descriptor keep
# the 320 px render the identity threshold was calibrated on.
CNN_SIZE = 160

_LABEL = re.compile(r"^[A-Za-z0-9]+$")


# ----------------------------------------------------------------------------- request


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
    (None when not available); ``head_affine`` maps the input's scanner RAS to atlas RAS (4x4).
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


@dataclass(frozen=True)
class QcRequest:
    """Every output of one participant session; figures go to ``figures_dir`` (inside ``output_dir``,
    which is the QC folder: the dataset's output_dir, or --qc-dir, or ``<output_dir>-qc`` for the
    raw layout; figure paths in the records are relative to it)."""

    output_dir: Path
    bids_dir: Path
    subject: str
    session: str | None
    figures_dir: Path
    items: list[QcItem]

    @classmethod
    def from_json(cls, request: dict[str, Any]) -> "QcRequest":
        """Parse the bridge request (see api.qc_outputs); raises ValueError naming the bad field."""
        subject = _label(request.get("subject"), "subject")
        session = None if request.get("session") is None else _label(request["session"], "session")
        output_dir = _absolute(request.get("output_dir"), "output_dir")
        figures_dir = _absolute(request.get("figures_dir"), "figures_dir")
        _inside(figures_dir, output_dir, "figures_dir")
        bids_dir = _absolute(request.get("bids_dir"), "bids_dir")
        items = request.get("items")
        if not isinstance(items, list):
            raise ValueError("qc: items must be a list")
        parsed = [_item(entry, n) for n, entry in enumerate(items)]
        for n, entry in enumerate(parsed):
            _inside(entry.input, bids_dir, f"items[{n}].input")  # records name inputs relative to bids_dir
        return cls(output_dir, bids_dir, subject, session, figures_dir, parsed)


def _label(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _LABEL.match(value):
        raise ValueError(f"qc: {name} must be a BIDS label (letters and digits), got {value!r}")
    return value


def _absolute(value: Any, name: str) -> Path:
    if not isinstance(value, str) or not os.path.isabs(value):
        raise ValueError(f"qc: {name} must be an absolute path, got {value!r}")
    return Path(value)


def _inside(path: Path, folder: Path, name: str) -> str:
    """``path`` relative to ``folder`` as a POSIX path; ValueError if it leaves the folder."""
    relative = PurePosixPath(Path(os.path.relpath(path, folder)).as_posix())
    if relative.parts[:1] == ("..",) or str(relative) == ".":
        raise ValueError(f"qc: {name} {path} is not inside {folder}")
    return str(relative)


def _optional_path(value: Any, name: str) -> Path | None:
    return None if value is None else _absolute(value, name)


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
    )


# ----------------------------------------------------------------------------- header and brain


def header_differences(before: StoredImage, after: StoredImage) -> list[str]:
    """What differs between two images' stored headers, one sentence each (empty: header kept).

    Compares shape, affine, qform and sform with their codes, stored data type, scl_slope and
    scl_inter, voxel sizes and units, exactly (a kept header is a copied header).
    """
    a, b = before.header, after.header
    differences: list[str] = []
    shape_a, shape_b = a.get_data_shape(), b.get_data_shape()
    if shape_a != shape_b:
        differences.append(f"shape {shape_text(shape_a)} -> {shape_text(shape_b)}")
    if not np.array_equal(before.affine, after.affine):
        differences.append(f"affine differs (max {_max_abs(before.affine, after.affine):.4g})")
    for form in ("qform", "sform"):
        matrix_a, code_a = getattr(a, f"get_{form}")(coded=True)
        matrix_b, code_b = getattr(b, f"get_{form}")(coded=True)
        if int(code_a or 0) != int(code_b or 0):
            differences.append(f"{form}_code {int(code_a or 0)} -> {int(code_b or 0)}")
        if (matrix_a is None) != (matrix_b is None) or (matrix_a is not None and not np.array_equal(matrix_a, matrix_b)):
            detail = f" (max {_max_abs(matrix_a, matrix_b):.4g})" if matrix_a is not None and matrix_b is not None else ""
            differences.append(f"{form} differs{detail}")
    dtype_a, dtype_b = np.dtype(a.get_data_dtype()), np.dtype(b.get_data_dtype())
    if dtype_a != dtype_b:
        same_name = dtype_a.name == dtype_b.name  # then only the byte order changed: show it
        differences.append(f"data type {dtype_a.str} -> {dtype_b.str}" if same_name else f"data type {dtype_a} -> {dtype_b}")
    for field_name in ("scl_slope", "scl_inter"):
        value_a, value_b = float(a[field_name]), float(b[field_name])
        if not (value_a == value_b or (np.isnan(value_a) and np.isnan(value_b))):
            differences.append(f"{field_name} {value_a:g} -> {value_b:g}")
    ndim = len(shape_a)
    if len(shape_b) == ndim and not np.array_equal(a["pixdim"][1 : ndim + 1], b["pixdim"][1 : ndim + 1]):
        differences.append(f"voxel sizes (pixdim) {shape_text(a['pixdim'][1:ndim + 1])} -> {shape_text(b['pixdim'][1:ndim + 1])}")
    if a.get_xyzt_units() != b.get_xyzt_units():
        differences.append(f"units {'/'.join(a.get_xyzt_units())} -> {'/'.join(b.get_xyzt_units())}")
    return differences


def shape_text(values) -> str:
    """Sizes as `188x256x190` (shape or voxel sizes)."""
    return "x".join(f"{float(v):g}" for v in values)


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))


def _native_mask(path: Path, on: StoredImage, role: str) -> np.ndarray:
    """A native-grid mask file (voxels > 0) checked to lie on ``on``'s grid; boolean (x, y, z)."""
    img = nib.load(str(path))
    if tuple(img.shape[:3]) != on.shape3d or not np.allclose(img.affine, on.affine, atol=1e-3):
        raise ValueError(f"{path}: {role} is not on the grid of {on.path}")
    return np.asarray(img.dataobj) > 0


def brain_changes(before: StoredImage, after: StoredImage, brain_guard: np.ndarray) -> guard.GuardReport:
    """Guard voxels whose stored value differs between input and output (all of them when the
    shape or stored dtype changed: then no voxel keeps its bits)."""
    if before.raw.shape != after.raw.shape:
        voxels = int(brain_guard.sum()) * before.volumes
        return guard.GuardReport(brain_voxels_changed=voxels, guard_voxels=voxels)
    return guard.count_changed(before.raw, after.raw, brain_guard)


# ----------------------------------------------------------------------------- faces


class _Head:
    """One image file, read and rendered once, with the faces found in its views (cached)."""

    def __init__(self, stored: StoredImage, head_affine: np.ndarray | None, threshold: float | None = None,
                 volume: np.ndarray | None = None):
        self.stored = stored
        # Volume 0 in real units on the native grid (or ``volume`` on the same grid), shared by
        # the renders and the slices (the renderer zeroes NaNs in it, harmless to both).
        self.nifti = nib.Nifti1Image(stored.real(0) if volume is None else volume, stored.affine)
        self.renders = render.render_views(self.nifti, head_affine=head_affine, threshold=threshold)
        self._found: dict[tuple[str, str], list[face.Detection]] = {}
        self._descriptors: dict[str, np.ndarray | None] = {}

    @property
    def has_surface(self) -> bool:
        return self.renders.skin.ok

    def detections(self, view: str, detector: str) -> list[face.Detection]:
        """Faces one detector finds in one view (boxes in render pixels), computed once."""
        key = (view, detector)
        if key not in self._found:
            image = self.renders.views[view]
            if detector == "cnn":
                self._found[key] = _cnn_on_shrunk(image)
            else:
                self._found[key] = face.detect(image, (detector,))
        return self._found[key]

    def fired(self) -> dict[str, list[str]]:
        """Report view -> detectors that fired, for every view some detector has looked at."""
        out: dict[str, list[str]] = {}
        for view in self.renders.views:
            run = [d for d in face.DETECTORS if (view, d) in self._found]
            if run:
                out[_name(view)] = [d for d in run if self._found[(view, d)]]
        return out

    def descriptor(self, view: str) -> np.ndarray | None:
        """Face descriptor of one view: on the best HOG box, else the best CNN box (None: no face).

        HOG boxes first, as face._best picks them (the landmark model was trained on them);
        the CNN only runs where HOG finds nothing.
        """
        if view not in self._descriptors:
            best = self.best(view)
            self._descriptors[view] = None if best is None else face.descriptor(self.renders.views[view], best)
        return self._descriptors[view]

    def best(self, view: str) -> face.Detection | None:
        """The face box the descriptor uses in one view: best HOG, else best CNN (None: no face)."""
        return (self.detections(view, "hog") or self.detections(view, "cnn") or [None])[0]


def _cnn_on_shrunk(image: np.ndarray) -> list[face.Detection]:
    """The CNN detector on a copy shrunk to CNN_SIZE px; boxes scaled back to ``image``'s pixels."""
    if image.shape[0] <= CNN_SIZE:
        return face.detect(image, ("cnn",))
    scale = image.shape[0] / CNN_SIZE
    small = np.asarray(Image.fromarray(image).resize((CNN_SIZE, CNN_SIZE), Image.BILINEAR))
    return [
        face.Detection("cnn", tuple(int(round(v * scale)) for v in d.box), d.score)  # type: ignore[arg-type]
        for d in face.detect(small, ("cnn",))
    ]


def _name(view: str) -> str:
    """The record's name of a render view."""
    return REPORT_VIEWS.get(view, view)


def _views(views) -> str:
    return ", ".join(_name(v) for v in views) or "none"


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


def deface_check(before: _Head, after: _Head | None, unseen: str = "",
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
    found_face = f"a face is still found in {_views(still)} (input: {_views(seen)})" if still else ""
    if landmarks["kept"]:
        detail = f"deface left {'; '.join(landmarks['kept'])}" + (f"; {found_face}" if found_face else "")
        return _face("fail", rule, detail, "landmarks" + (" and renders" if found_face else ""))
    if seen:
        if still:
            return _face("fail", rule, found_face, "renders")
        found = f"; landmarks removed: {'; '.join(landmarks['removed'])}" if landmarks["removed"] else ""
        return _face("pass", rule, f"input face in {_views(seen)}; none in the {len(after.renders.views)} output views{found}",
                     "renders" + (" and landmarks" if found else ""))
    if landmarks["removed"]:
        why = unseen or "the CNN finds no face in the input renders"
        return _face("pass", rule, f"{why}; landmarks found in the input volume and removed: {'; '.join(landmarks['removed'])}",
                     "landmarks")
    if after is None:
        return _face("inconclusive", f"inconclusive: {rule}", f"{unseen}; no eyes found in the volume", "none")
    hog = [v for v in before.renders.views if before.detections(v, "hog")]
    return _face(
        "inconclusive",
        f"inconclusive: {rule}, but the CNN finds no face in the input and no eyes are found in its volume",
        f"input face views: CNN none, HOG {_views(hog)}; output not searched",
        "none",
    )


def identity_check(before: _Head, after: _Head | None, unseen: str = "",
                   face_removed: _Head | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
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
    """
    rule = "identity distance above threshold in every view where the input shows a face (not the same person)"
    threshold = face.IDENTITY_THRESHOLD
    if after is None:
        identity = {"distance": None, "threshold": threshold, "model": face.MODEL_VERSION, "per_view": {}, "views_compared": 0}
        return _face("inconclusive", f"inconclusive: {rule}", unseen), identity
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
        "per_view": {_name(v): d for v, d in sorted(per_view.items())},
        "views_compared": len(witnesses),
        "boxes": {_name(v): b for v, b in sorted(boxes.items())},
    }
    if removed:
        identity["face_removed"] = {"distance": min(removed.values()), "per_view": {_name(v): d for v, d in sorted(removed.items())}}
        identity["views_blind"] = [_name(v) for v in blind]
    if not per_view:
        return _face("inconclusive", f"inconclusive: {rule}; the input shows no face in any view", "nothing to compare"), identity
    if not witnesses:
        detail = (f"removing the face moves the descriptor by at most {max(removed.values()):.3f} (<= {threshold:.3f}) in the"
                  f" views with an input face ({_views(blind)}): none can tell this face from none")
        return _face("inconclusive", f"inconclusive: {rule}", detail), identity
    closest = min(witnesses, key=lambda v: per_view[v])
    distance = per_view[closest]
    ignored = f"; not deciding, as removing the face moves them less: {_views(blind)}" if blind else ""
    if distance <= threshold:
        yardstick = f" (this input with its face removed: {removed[closest]:.3f} there)" if removed else ""
        detail = f"distance {distance:.3f} <= {threshold:.3f} in {_views([closest])}{yardstick}: the output face still matches the input's{ignored}"
        return _face("fail", rule, detail), identity
    detail = f"min distance {distance:.3f} > {threshold:.3f} over {len(witnesses)} view(s) ({_views(witnesses)}){ignored}"
    return _face("pass", rule, detail), identity


def face_removed_head(head: _Head, face_roi: np.ndarray, head_affine: np.ndarray | None) -> _Head:
    """``head`` with its face ROI set to background, as deface leaves it, rendered like ``head``
    (same frame, same skin level): the identity check's control."""
    volume = np.asarray(head.nifti.dataobj, dtype=np.float32)
    return _Head(head.stored, head_affine, threshold=head.renders.skin.value,
                 volume=deface(volume, face_roi, background_value(volume)))


def _face(verdict: str, rule: str, detail: str, evidence: str | None = None) -> dict[str, Any]:
    out = {"pass": verdict != "fail", "verdict": verdict, "rule": rule, "detail": detail}
    return out if evidence is None else {**out, "evidence": evidence}


# ----------------------------------------------------------------------------- slices


@dataclass(frozen=True)
class _Planes:
    """Where one input's slice figures are cut, and the intensity shown white (shared by its outputs)."""

    centre: np.ndarray  # scanner RAS mm: the head's centroid
    half_mm: float
    rotation: np.ndarray  # scanner -> viewing frame
    white: float
    # No head surface (a TOF angiogram: vessels in an empty field): a slice through it shows a few
    # dots, so its figures are maximum intensity projections instead, the radiologist's view.
    project: bool = False


def _planes(head: _Head, head_affine: np.ndarray | None) -> _Planes:
    data = np.asarray(head.nifti.dataobj)[::2, ::2, ::2]
    inside = data > head.renders.skin.value
    if not inside.any():
        inside = np.ones_like(data, dtype=bool)
    world = np.argwhere(inside) * 2 @ head.stored.affine[:3, :3].T + head.stored.affine[:3, 3]
    centre = world.mean(axis=0)
    half = max(float(np.percentile(np.linalg.norm(world - centre, axis=1), 99.5)) + render.PAD_MM, 60.0)
    white = float(np.percentile(data[inside], 99.5))
    return _Planes(centre, half, render.rotation_of(head_affine), max(white, 1e-6), project=not head.has_surface)


def _slice(planes: _Planes, head: _Head, volume: np.ndarray, order: int, plane: str, through: np.ndarray | None = None) -> np.ndarray:
    """One 1 mm plane of ``volume`` (on ``head``'s grid): "sagittal" (face to the right) or
    "axial" (seen from above, face up), as render.render_slices draws them."""
    e = np.eye(3)
    right, up = (e[1], e[2]) if plane == "sagittal" else (e[0], e[1])
    centre = planes.centre if through is None else through
    if planes.project:
        return _projection(head.stored.affine, volume, centre, right, up, planes)
    # render's plane sampler, with our centre and size, so the input and its outputs share one plane.
    return render.slice_plane(head.nifti, volume, centre, right, up, planes.half_mm, planes.rotation, order)


def _projection(affine: np.ndarray, volume: np.ndarray, centre, right, up, planes: _Planes) -> np.ndarray:
    """Maximum intensity projection of ``volume`` along its voxel axis nearest the plane's normal,
    drawn on the plane's pixels (a mask projects to its silhouette)."""
    normal = planes.rotation.T @ np.cross(right, up)  # scanner direction seen through
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    axis = int(np.argmax(np.abs(normal @ directions)))
    projected = np.max(volume, axis=axis).astype(np.float32)
    coords = render.plane_coordinates(affine, centre, right, up, planes.half_mm, planes.rotation)
    kept = [a for a in range(3) if a != axis]
    return ndi.map_coordinates(projected, coords[kept], order=1, cval=0.0, prefilter=False)


def _grey(planes: _Planes, values: np.ndarray) -> np.ndarray:
    grey = np.clip(values / planes.white * 255, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _contours(picture: np.ndarray, planes: _Planes, head: _Head, masks: list[np.ndarray], plane: str, through=None) -> np.ndarray:
    out = picture.copy()
    for index, mask in enumerate(masks):
        cut = _slice(planes, head, mask.astype(np.float32), 0, plane, through) > 0.5
        out[cut & ~ndi.binary_erosion(cut)] = render.OVERLAY_COLOURS[index % len(render.OVERLAY_COLOURS)]
    return out


def _mask_centre(mask: np.ndarray, affine: np.ndarray, planes: _Planes, default: np.ndarray) -> np.ndarray:
    """Scanner point at the head centre's left-right and front-back, at the mask centroid's height
    (viewing frame): the axial plane through the brain."""
    ijk = np.argwhere(mask[::2, ::2, ::2]) * 2
    if not ijk.size:
        return default
    centroid = planes.rotation @ (ijk.mean(axis=0) @ affine[:3, :3].T + affine[:3, 3])
    point = planes.rotation @ default
    point[2] = centroid[2]
    return planes.rotation.T @ point


# ----------------------------------------------------------------------------- the run


@dataclass
class SeenImage:
    """An image as QC sees an input: its head, its slice planes and the figures written for it
    (paths as the ``figure`` callback returned them, relative to output_dir).

    ``views`` maps record view names to figures, ``slices`` holds ``input_sagittal``;
    ``overlays`` holds the mask figures per (brain guard, face ROI) pair of files.
    """

    head: _Head
    planes: _Planes
    sagittal: np.ndarray
    views: dict[str, str]
    slices: dict[str, str]
    overlays: dict[tuple, dict[str, str]] = field(default_factory=dict)

    def face_views(self) -> dict[str, list[str]]:
        """Record view name -> detectors that fired (every view searched by every detector)."""
        return self.head.fired()

    @property
    def surface(self) -> tuple[bool, str]:
        """(whether a head surface was found, why not when it was not)."""
        return self.head.has_surface, self.head.renders.skin.reason


def see_image(path: Path, head_affine: np.ndarray | None, figure, prefix: str) -> SeenImage:
    """Read one image, render it and search every view with every face detector, as QC does
    for an input; save its views and mid-sagittal slice through ``figure(name, picture) -> path``
    as ``<prefix>_<view>`` and ``<prefix>_sagittal``.

    The image is in its own scanner space; ``head_affine`` (scanner RAS -> atlas RAS) turns the
    renders upright (None: seen in the scanner frame).
    """
    head = _Head(read_image(path), head_affine)
    # Every view is searched by both detectors: the deface check needs the CNN everywhere, the
    # identity check HOG first, and the report shows both.
    for view in head.renders.views:
        for detector in face.DETECTORS:
            head.detections(view, detector)
    views = {_name(v): figure(f"{prefix}_{_name(v)}", im) for v, im in head.renders.views.items()}
    planes = _planes(head, head_affine)
    sagittal = _grey(planes, _slice(planes, head, np.asarray(head.nifti.dataobj), 1, "sagittal"))
    slices = {"input_sagittal": figure(f"{prefix}_sagittal", sagittal)}
    return SeenImage(head, planes, sagittal, views, slices)


class _Run:
    """One qc_outputs call: inputs and masks are read once and shared by every item naming them."""

    def __init__(self, request: QcRequest):
        self.request = request
        self.inputs: dict[Path, SeenImage] = {}
        self.masks: dict[Path, np.ndarray] = {}
        self.removed: dict[tuple[Path, Path], _Head] = {}
        self.prefixes: set[str] = set()

    def figure(self, name: str, picture: np.ndarray) -> str:
        path = render.save_png(picture, self.request.figures_dir / f"{name}.png")
        return _inside(path, self.request.output_dir, "figure")

    def output_prefix(self, stem: str, method: str) -> str:
        """``<input stem>_<method>``, the start of an output's figure names; a second output of the
        same input and method in one call gets ``-2`` (and so on) rather than overwrite the first's."""
        prefix, n = f"{stem}_{method}", 1
        while prefix in self.prefixes:
            n += 1
            prefix = f"{stem}_{method}-{n}"
        self.prefixes.add(prefix)
        return prefix

    def mask(self, path: Path, on: StoredImage, role: str) -> np.ndarray:
        if path not in self.masks:
            self.masks[path] = _native_mask(path, on, role)
        return self.masks[path]

    def input_of(self, item: QcItem, stem: str) -> SeenImage:
        if item.input not in self.inputs:
            self.inputs[item.input] = see_image(item.input, item.head_affine, self.figure, f"{stem}_input")
        return self.inputs[item.input]

    def face_removed(self, source: SeenImage, item: QcItem) -> _Head | None:
        """:func:`face_removed_head` of an input, once per input and face ROI file; None without one."""
        if item.face_roi is None:
            return None
        key = (item.input, item.face_roi)
        if key not in self.removed:
            roi = self.mask(item.face_roi, source.head.stored, "face ROI")
            self.removed[key] = face_removed_head(source.head, roi, item.head_affine)
        return self.removed[key]

    def overlays(self, source: SeenImage, item: QcItem, stem: str) -> dict[str, str]:
        """masks_overlay and registration_overlay of an input, once per pair of mask files."""
        key = (item.brain_guard, item.face_roi)
        if key not in source.overlays:
            head, planes = source.head, source.planes
            brain_guard = self.mask(item.brain_guard, head.stored, "brain guard") if item.brain_guard else None
            face_roi = self.mask(item.face_roi, head.stored, "face ROI") if item.face_roi else None
            masks = [m for m in (brain_guard, face_roi) if m is not None]
            suffix = str(len(source.overlays) or "")  # a second pair of masks must not overwrite the first's figures
            figures = {}
            if masks:
                figures["masks_overlay"] = self.figure(f"{stem}_masks{suffix}", _contours(source.sagittal, planes, head, masks, "sagittal"))
            if brain_guard is not None:
                # The guard is the atlas brain pulled onto this grid (grown 4 mm): its outline over the
                # brain, cut axially through its centre, shows how well the atlas was registered.
                through = _mask_centre(brain_guard, head.stored.affine, planes, planes.centre)
                axial = _grey(planes, _slice(planes, head, np.asarray(head.nifti.dataobj), 1, "axial", through))
                figures["registration_overlay"] = self.figure(
                    f"{stem}_registration{suffix}", _contours(axial, planes, head, [brain_guard], "axial", through)
                )
            source.overlays[key] = figures
        return source.overlays[key]

    def check(self, item: QcItem) -> tuple[dict[str, Any], dict[str, float]]:
        """The QC record of one output and the wall seconds of its steps."""
        seconds: dict[str, float] = {}
        clock = _Clock(seconds)
        stem = _stem(item.input)
        with clock("input_s"):
            source = self.input_of(item, stem)
            slices = {**source.slices, **self.overlays(source, item, stem)}
        before = source.head
        with clock("read_s"):
            after_stored = read_image(item.output)
        with clock("header_s"):
            differences = header_differences(before.stored, after_stored)
        with clock("brain_s"):
            brain = self.brain_check(item, before.stored, after_stored)
        same_grid = after_stored.shape3d == before.stored.shape3d and np.allclose(after_stored.affine, before.stored.affine, atol=1e-3)
        with clock("render_s"):
            after = None
            if not before.has_surface:
                unseen = f"no head surface: {before.renders.skin.reason}"
            elif not same_grid:
                unseen = "the output is not on the input's grid, its face cannot be compared"
            else:
                # The input's skin level, so both surfaces are cut at the same intensity.
                after = _Head(after_stored, item.head_affine, threshold=before.renders.skin.value)
        with clock("face_s"):
            if item.method == "deface":
                guard_mask = None if item.brain_guard is None else self.mask(item.brain_guard, before.stored, "brain guard")
                landmarks = (face_landmarks_removed(before.stored, after_stored, guard_mask, np.asarray(before.nifti.dataobj))
                             if same_grid else None)
                face_check, identity = deface_check(before, after, unseen if after is None else "", landmarks), None
            else:
                removed = None if after is None else self.face_removed(source, item)
                face_check, identity = identity_check(before, after, unseen if after is None else "", removed)
        with clock("figures_s"):
            prefix = self.output_prefix(stem, item.method)
            output_views = {}
            if after is not None:
                output_views = {_name(v): self.figure(f"{prefix}_{_name(v)}", im) for v, im in after.renders.views.items()}
            if same_grid:
                # The output's own voxels cut on the input's planes: before and after show the same place.
                picture = _grey(source.planes, _slice(source.planes, before, after_stored.real(0), 1, "sagittal"))
                slices["output_sagittal"] = self.figure(f"{prefix}_sagittal", picture)
        checks = {
            "brain_voxels_changed": brain,
            "header": {"pass": not differences, "differences": differences},
            "face": face_check,
            "face_views_input": before.fired(),
            "face_views_output": {} if after is None else after.fired(),
            "identity": identity,
            "registration": {
                "metric": item.registration.metric,
                "value": item.registration.value,
                "flag": item.registration.flag,
                "pass": item.registration.flag in ("ok", "scanner"),
                **({"check": item.registration.check} if item.registration.check else {}),
            },
        }
        reason = _reason(checks, item)
        record = {
            "subject": self.request.subject,
            "session": self.request.session,
            "input": _inside(item.input, self.request.bids_dir, "input"),
            # A FAILED output is not renamed into place by the pipeline: it was not written.
            "output": None if reason else item.output_name,
            "method": item.method,
            "status": "FAILED" if reason else "PASS",
            "reason": reason,
            "checks": checks,
            "renders": {"input": dict(source.views), "output": output_views, "slices": slices,
                        **({"projection": "mip"} if source.planes.project else {})},
        }
        return record, seconds

    def brain_check(self, item: QcItem, before: StoredImage, after: StoredImage) -> dict[str, Any]:
        """The independent count (from the two files and the guard mask) next to the engine's.

        Without a guard mask nothing can be re-checked: the engine's count stands (``rechecked``
        False). Either count above 0 fails, and so does a fit that put the face ROI inside the
        subject's own brain (the guard took those voxels back, but the fit is wrong).
        """
        if item.brain_guard is None:
            value, voxels, rechecked = item.brain_voxels_changed, item.guard_voxels, False
        else:
            report = brain_changes(before, after, self.mask(item.brain_guard, before, "brain guard"))
            value, voxels, rechecked = report.brain_voxels_changed, report.guard_voxels, True
        out = {
            "value": int(value),
            "guard_voxels": int(voxels),
            "pass": value == 0 and item.brain_voxels_changed == 0 and not item.registration.hard,
            "engine_value": int(item.brain_voxels_changed),
            "rechecked": rechecked,
        }
        if item.registration.hard:
            out["face_roi_in_brain"] = item.registration.check.get("reason", "the fit put the face ROI inside the brain")
        return out


def _reason(checks: dict[str, Any], item: QcItem) -> str | None:
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
        parts.append(f"{item.method}: {checks['face']['detail']}")
    if not checks["registration"]["pass"]:
        reg = checks["registration"]
        value = "" if reg["value"] is None else f" {reg['metric']} {reg['value']:.3f}"
        why = (reg.get("check") or {}).get("reason")
        parts.append(f"registration poor{value}" + (f" ({why})" if why else ""))
    return "; ".join(parts) or None


def _stem(path: Path) -> str:
    name = path.name
    for extension in (".nii.gz", ".nii"):
        if name.endswith(extension):
            return name[: -len(extension)]
    return path.stem


class _Clock:
    """Adds the wall seconds of each ``with clock(name):`` block to ``seconds[name]``."""

    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds
        self.name = ""

    def __call__(self, name: str) -> "_Clock":
        self.name = name
        return self

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.seconds[self.name] = round(self.seconds.get(self.name, 0.0) + time.perf_counter() - self.start, 3)


def check_outputs(request: QcRequest) -> dict[str, Any]:
    """QC every output of one participant session; writes the figures, returns the records.

    Returns ``{"records": [...], "timings": {...}}``: one QC record per item in request order
    (the shape src/qc/records.ts validates; render paths relative to output_dir) and wall
    seconds per item (``input_s`` is the shared work on its input, paid by the first item).
    """
    start = time.perf_counter()
    request.figures_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(request)
    records, timings = [], []
    for item in request.items:
        item_start = time.perf_counter()
        record, seconds = run.check(item)
        seconds["total_s"] = round(time.perf_counter() - item_start, 3)
        records.append(record)
        timings.append({"output": item.output_name, "method": item.method, **seconds})
    return {"records": records, "timings": {"items": timings, "total_s": round(time.perf_counter() - start, 3)}}
