"""Standalone QC: check one image anonymized by any tool (pydeface, AFNI refacer, mri_reface,
micanon), alone or against its original, with the pipeline's own checks and rules.

Spaces. IMAGE and ORIGINAL are each in their own scanner space (RAS mm); an anonymized image is
expected on its original's voxel grid (a tool that resampled it fails the header check, and its
brain voxels cannot be compared one to one). The atlas is registered to the ORIGINAL (to the
IMAGE when there is no original) exactly as the pipeline registers a session's T1w
(:func:`micanon.space.registration.register_to_atlas`); the brain guard and face ROI are pulled onto the
original's grid as the pipeline pulls them (:func:`micanon.masks.pull_masks`, guard grown by
:data:`micanon.anonymize.guard.GUARD_MM`); renders are turned upright by that same scanner -> atlas affine.

With an original, the record is the pipeline's QC record (:func:`micanon.qc.check_outputs`, one
item), so the checks are the same code and the same numbers. Without one, only what one image
can show is checked (its faces and its registration); brain, header and identity are recorded as
``{"verdict": "not_checked", "pass": None}``, never as passed.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import nibabel as nib
import numpy as np

from micanon import face, qc
from micanon.anonymize import guard
from micanon.atlas.load import Atlas
from micanon.io import StoredImage, read_image
from micanon.qc.run import make_figure_folder, save_figure
from micanon.qc.verdict import image_alone_reason
from micanon.anonymize.masks import atlas_head_on_grid, pull_masks
from micanon.space.registration import AtlasRegistration, register_to_atlas
from micanon.session import ReferenceFit, fit_reference, load_atlas_images

NO_ORIGINAL = "not checked: no --original"
DEFACE_ALONE_RULE = "no face found by the CNN detector in any view of the image"
# Why a no-face verdict on one image is weaker than with its original (docs/qc-calibration.md).
CNN_CAVEAT = "the CNN also misses some intact faces (e.g. a field of view ending below the nose): give --original to know it saw one before"


def check_image(
    image: str | os.PathLike[str],
    original: str | os.PathLike[str] | None,
    method: str,
    atlas: Atlas,
    *,
    output_dir: str | os.PathLike[str],
    figures_dir: str | os.PathLike[str],
    staging_dir: str | os.PathLike[str] | None = None,
    subject: str,
    session: str | None,
    seed: int,
    log: Callable[[str], None] = lambda msg: None,
    reference_is_t1w: bool = True,
) -> dict[str, Any]:
    """QC one anonymized image (its own scanner space), against its original when given.

    ``reference_is_t1w`` False: the image registered to the atlas (the original, else the image)
    is another contrast than a T1w (the caller reads that from its BIDS name).

    Figures are written under ``figures_dir`` (inside ``output_dir``), or into ``staging_dir``
    under the same names when given (the record still cites ``figures_dir``: the caller moves
    them in). Returns the QC record:
    with an original, the pipeline's record (src/engine/qc-record.ts validates it) with a
    ``standalone`` block added; without one, the same keys with the checks one image cannot
    answer marked not checked. ``status`` is PASS when every check that ran passed.
    """
    if method not in qc.METHODS:
        raise ValueError(f"method must be one of {', '.join(qc.METHODS)}, got {method!r}")
    image, output_dir, figures_dir = Path(image).absolute(), Path(output_dir).absolute(), Path(figures_dir).absolute()
    original = None if original is None else Path(original).absolute()
    # Where the record and its figures go (the item is added by the check that runs).
    figures = qc.QcRequest(output_dir, (original or image).parent, subject, session, figures_dir, [],
                           staging_dir=None if staging_dir is None else Path(staging_dir).absolute())
    start = time.perf_counter()
    # Both files are read before the registration, so a bad one is named at once.
    image_stored = read_image(image)
    reference = read_image(original) if original is not None else image_stored
    with tempfile.TemporaryDirectory(prefix="micanon-qc-") as work:
        log(f"registering {Path(reference.path).name} to the atlas")
        if original is None:
            fit = _register(reference, atlas, seed=seed, work_dir=work, t1w_contrast=reference_is_t1w)
            registered = time.perf_counter()
            registration = qc.Registration(fit.quality.metric, round(float(fit.quality.value), 4), fit.quality.flag)
            record = _check_alone(image, method, fit.native_to_atlas, registration, figures)
        else:
            # As the pipeline does: the original's own brain joins the guard, and the fit is judged.
            reference_fit = _fit_original(reference, atlas, seed=seed, work_dir=work, t1w_contrast=reference_is_t1w, log=log)
            registered = time.perf_counter()
            quality = reference_fit.quality
            registration = qc.Registration(quality.metric, round(float(quality.value), 4), quality.flag, quality.check)
            record = _check_pair(image, image_stored, original, reference, method, atlas, reference_fit, registration,
                                 figures, work)
    record["standalone"] = {
        "image": str(image),
        "original": None if original is None else str(original),
        "atlas": str(Path(atlas.template).parent),
        "registered": Path(reference.path).name,
        "seconds": {"registration": round(registered - start, 2), "checks": round(time.perf_counter() - registered, 2)},
    }
    return record


def _register(reference: StoredImage, atlas: Atlas, *, seed: int, work_dir: str, t1w_contrast: bool) -> AtlasRegistration:
    """The pipeline's reference -> atlas affine of ``reference`` (scanner RAS -> atlas RAS); another
    contrast than a T1w is registered as a stand-in reference is (``register_to_atlas``)."""
    images = load_atlas_images(atlas)
    try:
        return register_to_atlas(
            reference.real(0), reference.affine, images.template, images.affine, images.head, seed=seed, work_dir=work_dir,
            t1w_contrast=t1w_contrast,
        )
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{reference.path}: registration to the atlas failed ({' '.join(str(exc).split())})") from exc


def _fit_original(reference: StoredImage, atlas: Atlas, *, seed: int, work_dir: str, t1w_contrast: bool, log) -> ReferenceFit:
    """The pipeline's reference fit of the original: atlas affine, its own brain, the fit check."""
    try:
        return fit_reference(reference.real(0), reference.affine, load_atlas_images(atlas), seed=seed, work_dir=work_dir,
                             reference_is_t1w=t1w_contrast, log=log)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{reference.path}: registration to the atlas failed ({' '.join(str(exc).split())})") from exc


# ----------------------------------------------------------------------------- with an original


def _check_pair(image: Path, image_stored: StoredImage, original: Path, stored: StoredImage, method: str, atlas: Atlas,
                reference_fit: ReferenceFit, registration: qc.Registration, request: qc.QcRequest,
                work: str) -> dict[str, Any]:
    """The pipeline's QC record of IMAGE as the ``method`` output of ORIGINAL (``request``: where
    its record and figures go, the item added here)."""
    fit = reference_fit.atlas_fit
    images = load_atlas_images(atlas)
    masks = pull_masks(images, stored.shape3d, stored.affine, fit.native_to_atlas,
                       guard_mm=guard.margin_mm(reference_fit.brain.ok), with_face=False,
                       native_brain=reference_fit.brain.on_grid(stored.shape3d, stored.affine))
    mask_files = {}
    for role, mask in (("brain_guard", masks.brain_guard), ("face_roi", masks.face_roi)):
        mask_files[role] = Path(work) / f"original_desc-{role}_mask.nii"
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), stored.affine), str(mask_files[role]))
    atlas_head = None
    if method in ("reface", "warpface"):  # the atlas face in the original's camera, as the pipeline's QC has it
        atlas_head = Path(work) / "original_desc-atlasHead_T1w.nii"
        nib.save(nib.Nifti1Image(atlas_head_on_grid(images, stored.shape3d, stored.affine, fit.native_to_atlas), stored.affine),
                 str(atlas_head))
    item = qc.QcItem(
        input=original, output=image, output_name=image.name, method=method,
        # No engine count exists here: the count is the QC's own, from the two files and the guard.
        brain_voxels_changed=0, guard_voxels=int(masks.brain_guard.sum()) * stored.volumes,
        brain_guard=mask_files["brain_guard"], face_roi=mask_files["face_roi"],
        head_affine=fit.native_to_atlas, registration=registration, atlas_head=atlas_head,
    )
    result = qc.check_outputs(dataclasses.replace(request, items=[item]))
    record = result["records"][0]
    # The image exists whatever its verdict (the pipeline's null means "not written").
    record["output"] = image.name
    brain = record["checks"]["brain_voxels_changed"]
    brain.pop("engine_value", None)
    if image_stored.raw.shape != stored.raw.shape:
        brain["detail"] = (f"the image is not on the original's grid ({qc.shape_text(image_stored.raw.shape)} vs "
                           f"{qc.shape_text(stored.raw.shape)}): its voxels cannot be compared one to one, so every guard voxel counts as changed")
    elif image_stored.raw.dtype != stored.raw.dtype or image_stored.slope_inter() != stored.slope_inter():
        # Bit for bit is the rule; still say whether the values survived another tool's re-storing.
        differ = _real_changes(stored, image_stored, masks.brain_guard)
        brain["detail"] = (f"the image is stored differently ({stored.raw.dtype}, scaling {_scaling(stored)} -> "
                           f"{image_stored.raw.dtype}, scaling {_scaling(image_stored)}): no stored voxel keeps its bits; "
                           f"in real values {differ} guard voxels differ")
    elif not np.allclose(image_stored.affine, stored.affine, atol=1e-3):
        brain["detail"] = "the image's affine differs from the original's: voxels compared by index, the header check says how"
    return record


def _real_changes(before: StoredImage, after: StoredImage, brain_guard: np.ndarray) -> int:
    """Guard voxels (over all volumes) whose real value (scaling applied) differs beyond float32 rounding."""
    return int(sum(
        np.count_nonzero(~np.isclose(before.real(v)[brain_guard], after.real(v)[brain_guard], rtol=1e-6, atol=0, equal_nan=True))
        for v in range(before.volumes)
    ))


def _scaling(image: StoredImage) -> str:
    slope, inter = image.slope_inter()
    return f"{slope:g}/{inter:g}"


# ----------------------------------------------------------------------------- image alone


def _not_checked(detail: str = NO_ORIGINAL) -> dict[str, Any]:
    return {"verdict": "not_checked", "pass": None, "detail": detail}


def _check_alone(image: Path, method: str, head_affine: np.ndarray, registration: qc.Registration,
                 request: qc.QcRequest) -> dict[str, Any]:
    """What one image can show: which views show a face, by which detector, and (deface) whether
    the CNN finds one. Figures: the image's views and its mid-sagittal slice, where ``request``
    draws them."""
    make_figure_folder(request)
    seen = qc.see_image(image, head_affine, functools.partial(save_figure, request),
                        f"{image.name.split('.')[0]}_{method}")
    views = seen.face_views()
    face_check = _face_alone(method, views, *seen.surface)
    checks = {
        "brain_voxels_changed": _not_checked(),
        "header": _not_checked(),
        "face": face_check,
        "face_views_input": {},
        "face_views_output": views,
        "identity": None if method == "deface" else _not_checked(),
        "registration": {**dataclasses.asdict(registration), "pass": registration.flag == "ok"},
    }
    reason = image_alone_reason(checks, method)
    return {
        "subject": request.subject,
        "session": request.session,
        "input": None,
        "output": image.name,
        "method": method,
        "status": "FAILED" if reason else "PASS",
        "reason": reason,
        "checks": checks,
        "renders": {"input": {}, "output": seen.views, "slices": {"output_sagittal": seen.slices["input_sagittal"]}},
    }


def _face_alone(method: str, views: dict[str, list[str]], has_surface: bool, why_not: str) -> dict[str, Any]:
    """The face check one image allows: after deface, no CNN face in any view (the pipeline's
    detector for deface), inconclusive where HOG still sees a face-like pattern; after
    reface/warpface nothing to judge without the original's face."""
    cnn = [v for v, fired in views.items() if any(d in fired for d in face.DEFACE_CHECK_DETECTORS)]
    if method != "deface":
        shown = f"face found in {', '.join(cnn)} (CNN)" if cnn else "no face found by the CNN"
        return {**_not_checked(f"{NO_ORIGINAL} (the identity check compares the image's face with the original's); {shown}"),
                "rule": "identity distance to the original's face above threshold"}
    if not has_surface:
        return {"pass": True, "verdict": "inconclusive", "rule": f"inconclusive: {DEFACE_ALONE_RULE}", "detail": f"no head surface: {why_not}"}
    if cnn:
        return {"pass": False, "verdict": "fail", "rule": DEFACE_ALONE_RULE, "detail": f"a face is found in {', '.join(cnn)}"}
    hog = [v for v, fired in views.items() if "hog" in fired]
    if hog:
        # HOG fires on cut faces as on intact faces cut by the field of view: it cannot tell
        # which this is, and the CNN cannot be trusted to see the latter. Without the original,
        # say so instead of passing an image that may still show its face.
        return {"pass": True, "verdict": "inconclusive", "rule": f"inconclusive: {DEFACE_ALONE_RULE}",
                "detail": f"the CNN finds none, but HOG finds a face-like pattern in {', '.join(hog)}; {CNN_CAVEAT}"}
    return {"pass": True, "verdict": "pass", "rule": DEFACE_ALONE_RULE, "detail": f"no detector finds a face in the {len(views)} views; {CNN_CAVEAT}"}
