"""One ``qc_outputs`` call: every output of a participant session checked, its figures written,
its record returned. Every input is read, rendered and searched for faces once per call, whatever
the number of its outputs; mask files are read once too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from micanon import render
from micanon.io import StoredImage, read_image
from micanon.qc.brain import brain_check, native_mask
from micanon.qc.face_checks import deface_check, face_landmarks_removed
from micanon.qc.figures import SeenImage, mask_figures, output_sagittal, see_image
from micanon.qc.header import header_check
from micanon.qc.identity import ATLAS_DECIDES, atlas_head, face_removed_head, identity_check
from micanon.qc.registration import registration_check
from micanon.qc.request import QcItem, QcRequest, inside, reference_name
from micanon.qc.seeing import Head, view_name
from micanon.qc.verdict import give_verdicts


def make_figure_folder(request: QcRequest) -> None:
    """Create the folder figures are written to: ``figures_dir`` (with its parents), or the
    ``staging_dir`` inside the caller's work folder, which must exist (an interrupt that removed
    it wins)."""
    if request.staging_dir is None:
        request.figures_dir.mkdir(parents=True, exist_ok=True)
    else:
        request.staging_dir.mkdir(exist_ok=True)


def save_figure(request: QcRequest, name: str, picture: np.ndarray) -> str:
    """Write ``<name>.png`` where the request draws figures; returns the path the records cite
    (in ``figures_dir``, relative to ``output_dir``)."""
    render.save_png(picture, request.write_dir / f"{name}.png")
    return inside(request.figures_dir / f"{name}.png", request.output_dir, "figure")


class _Run:
    """One qc_outputs call: inputs and masks are read once and shared by every item naming them."""

    def __init__(self, request: QcRequest):
        self.request = request
        self.inputs: dict[Path, SeenImage] = {}
        self.masks: dict[Path, np.ndarray] = {}
        self.removed: dict[tuple[Path, Path], Head] = {}
        self.atlases: dict[tuple[Path, Path], tuple[Head, dict[str, str]]] = {}
        self.prefixes: set[str] = set()

    def figure(self, name: str, picture: np.ndarray) -> str:
        return save_figure(self.request, name, picture)

    def output_prefix(self, stem: str, method: str) -> str:
        """``<input stem>_<method>``, the start of an output's figure names; a second output of the
        same input and method in one call gets ``-2`` (and so on) rather than overwrite the first's."""
        prefix, n = f"{stem}_{method}", 1
        while prefix in self.prefixes:
            n += 1
            prefix = f"{stem}_{method}-{n}"
        self.prefixes.add(prefix)
        return prefix

    def mask(self, path: Path | None, on: StoredImage, role: str) -> np.ndarray | None:
        if path is None:
            return None
        if path not in self.masks:
            self.masks[path] = native_mask(path, on, role)
        return self.masks[path]

    def input_of(self, item: QcItem, stem: str) -> SeenImage:
        if item.input not in self.inputs:
            self.inputs[item.input] = see_image(item.input, item.head_affine, self.figure, f"{stem}_input")
        return self.inputs[item.input]

    def face_removed(self, source: SeenImage, item: QcItem) -> Head | None:
        """:func:`face_removed_head` of an input, once per input and face ROI file; None without one."""
        if item.face_roi is None:
            return None
        key = (item.input, item.face_roi)
        if key not in self.removed:
            roi = self.mask(item.face_roi, source.head.stored, "face ROI")
            self.removed[key] = face_removed_head(source.head, roi, item.head_affine)
        return self.removed[key]

    def atlas(self, source: SeenImage, item: QcItem, stem: str) -> tuple[Head | None, dict[str, str]]:
        """:func:`atlas_head` of an input (the atlas person in its camera) and its renders' figures,
        once per input and atlas head file; (None, {}) without one."""
        if item.atlas_head is None:
            return None, {}
        key = (item.input, item.atlas_head)
        if key not in self.atlases:
            volume = read_image(item.atlas_head)
            if volume.shape3d != source.head.stored.shape3d:
                raise ValueError(f"qc: the atlas head {item.atlas_head} is not on the grid of {item.input}")
            head = atlas_head(source.head, volume.real(0), item.head_affine)
            figures = {view_name(v): self.figure(f"{stem}_atlas_{view_name(v)}", im) for v, im in head.renders.views.items()}
            self.atlases[key] = (head, figures)
        return self.atlases[key]

    def overlays(self, source: SeenImage, item: QcItem, stem: str) -> dict[str, str]:
        """masks_overlay and registration_overlay of an input, once per pair of mask files."""
        stored = source.head.stored
        return mask_figures(source, (item.brain_guard, item.face_roi), self.mask(item.brain_guard, stored, "brain guard"),
                            self.mask(item.face_roi, stored, "face ROI"), self.figure, stem)

    def check(self, item: QcItem) -> tuple[dict[str, Any], dict[str, float]]:
        """The QC record of one output, its verdict not yet given (verdict.give_verdicts), and
        the wall seconds of its steps."""
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
            header = header_check(before.stored, after_stored)
        with clock("brain_s"):
            brain = brain_check(before.stored, after_stored, self.mask(item.brain_guard, before.stored, "brain guard"),
                                item.brain_voxels_changed, item.guard_voxels, item.registration)
        same_grid = after_stored.shape3d == before.stored.shape3d and np.allclose(after_stored.affine, before.stored.affine, atol=1e-3)
        with clock("render_s"):
            after = None
            if not before.has_surface:
                unseen = f"no head surface: {before.renders.skin.reason}"
            elif not same_grid:
                unseen = "the output is not on the input's grid, its face cannot be compared"
            else:
                # The input's skin level, so both surfaces are cut at the same intensity.
                after = Head(after_stored, item.head_affine, threshold=before.renders.skin.value)
        atlas_views: dict[str, str] = {}
        with clock("face_s"):
            if item.method == "deface":
                guard_mask = self.mask(item.brain_guard, before.stored, "brain guard")
                landmarks = (face_landmarks_removed(before.stored, after_stored, guard_mask, np.asarray(before.nifti.dataobj))
                             if same_grid else None)
                face_check, identity = deface_check(before, after, unseen if after is None else "", landmarks), None
            else:
                # Both controls only serve views where the input shows a face: none, no controls.
                compared = after is not None and any(before.descriptor(v) is not None for v in before.renders.views)
                removed = self.face_removed(source, item) if compared else None
                atlas, atlas_views = self.atlas(source, item, stem) if compared else (None, {})
                face_check, identity = identity_check(before, after, unseen if after is None else "", removed,
                                                      atlas, atlas_decides=item.method in ATLAS_DECIDES)
        with clock("figures_s"):
            prefix = self.output_prefix(stem, item.method)
            output_views = {}
            if after is not None:
                output_views = {view_name(v): self.figure(f"{prefix}_{view_name(v)}", im) for v, im in after.renders.views.items()}
            if same_grid:
                slices["output_sagittal"] = self.figure(f"{prefix}_sagittal", output_sagittal(source, after_stored.real(0)))
        checks = {
            "brain_voxels_changed": brain,
            "header": header,
            "face": face_check,
            "face_views_input": before.fired(),
            "face_views_output": {} if after is None else after.fired(),
            "identity": identity,
            "registration": registration_check(item.registration),
        }
        if item.warp is not None:  # warpface: the engine's figures for its face warp, shown beside the checks
            checks["warp"] = item.warp
        record = {
            "subject": self.request.subject,
            "session": self.request.session,
            "input": inside(item.input, self.request.bids_dir, "input"),
            "output": item.output_name,
            "method": item.method,
            "checks": checks,
            "renders": {"input": dict(source.views), "output": output_views, "slices": slices,
                        **({"atlas": atlas_views} if atlas_views else {}),
                        **({"projection": "mip"} if source.planes.project else {})},
        }
        return record, seconds


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

    Returns ``{"records": [...], "timings": {...}}``: one QC record per item in request order,
    with its verdict (the shape src/engine/qc-record.ts validates; render paths relative to
    output_dir), and wall seconds per item (``input_s`` is the shared work on its input, paid by
    the first item).
    """
    start = time.perf_counter()
    make_figure_folder(request)
    run = _Run(request)
    records, timings = [], []
    for item in request.items:
        item_start = time.perf_counter()
        record, seconds = run.check(item)
        seconds["total_s"] = round(time.perf_counter() - item_start, 3)
        records.append(record)
        timings.append({"output": item.output_name, "method": item.method, **seconds})
    reference = request.reference
    give_verdicts(records, None if reference is None else
                  {"input": reference_name(reference.input, request.bids_dir), "reason": reference.reason})
    return {"records": records, "timings": {"items": timings, "total_s": round(time.perf_counter() - start, 3)}}
