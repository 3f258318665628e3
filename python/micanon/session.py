"""One session, end to end: read each image once, register once, anonymize by each method, check.

This is the rim of the engine: files are read and written here and nowhere else in the
anonymization path. Shared work is done once per session: the T1w -> atlas affine, the T1w's
native masks and the face warp; each other image adds only its rigid fit to the T1w.
"""

from __future__ import annotations

import functools
import json
import os
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np

from micanon.anonymize import fit_check, guard, native_brain
from micanon.anonymize import masks as atlas_masks
from micanon.anonymize import warp as warps
from micanon.anonymize import methods as face_methods
from micanon.landmarks import trusted_eyes
from micanon.space import grid
from micanon.io import StoredImage, descrip_for, output_path_ok, read_image, to_stored, write_like
from micanon.space.registration import (
    AtlasRegistration,
    Quality,
    SessionRegistration,
    register_to_atlas,
    register_to_t1w,
)

METHODS = ("deface", "reface", "warpface")
# The records also count changed voxels within this distance of the subject's own brain.
NEAR_BRAIN_MM = 2.0


class _Timings(dict):
    """Seconds per stage, summed over images: what the benchmark and the log report."""

    def add(self, stage: str, start: float) -> None:
        self[stage] = round(self.get(stage, 0.0) + time.perf_counter() - start, 3)
ATLAS_ROLES = ("template", "face_roi", "brain", "brain_neck", "face")


def load_atlas_images(atlas) -> atlas_masks.AtlasImages:
    """Read the atlas roles (paths on ``atlas``) into arrays on the atlas grid.

    Kept for the life of the process (the bridge runs many sessions in one Python), keyed by
    the files' paths, sizes and modification times, so a rebuilt atlas is read afresh.
    """
    paths = []
    for role in ATLAS_ROLES:
        path = getattr(atlas, role, None)
        if path is None:
            raise ValueError(f"atlas: no {role} image")
        stat = os.stat(path)
        paths.append((str(path), stat.st_size, stat.st_mtime_ns))
    ears = getattr(atlas, "ears", None)
    if ears is not None:
        stat = os.stat(ears)
        paths.append((str(ears), stat.st_size, stat.st_mtime_ns))
    return _read_atlas(tuple(paths))


@functools.lru_cache(maxsize=2)
def _read_atlas(paths: tuple) -> atlas_masks.AtlasImages:
    arrays = {}
    affine = None
    for role, (path, _, _) in zip(ATLAS_ROLES + ("ears",), paths):
        image = read_image(path)
        arrays[role] = image.real()
        if affine is None:
            affine = image.affine
        elif image.shape3d != arrays["template"].shape or not np.allclose(image.affine, affine, atol=1e-3):
            raise ValueError(f"{path}: atlas {role} is not on the template grid")
    return atlas_masks.atlas_images(affine=affine, **arrays)


@dataclass
class _Image:
    """An input image with its fit to the T1w and its masks on its own grid."""

    stored: StoredImage
    image_to_t1w: np.ndarray
    registration: SessionRegistration | None
    masks: atlas_masks.NativeMasks
    background: float
    native_brain: np.ndarray | None = None  # the subject's own brain on this grid (None: no estimate)
    near_brain: np.ndarray | None = None  # and every voxel within NEAR_BRAIN_MM of it


def anonymize_session(
    reference: str,
    others: list[dict],
    methods: list[str],
    atlas,
    outputs: dict[str, dict[str, str]],
    *,
    dilate: float,
    robust: bool = False,
    work_dir: str,
    keep_work: bool = False,
    seed: int,
    version: str = "0.1.0",
    log: Callable[[str], None] = lambda msg: None,
    reference_is_t1w: bool = True,
    remove_ears: bool = False,
) -> dict:
    """Anonymize a session's T1w (``reference``) and its other anatomical images.

    ``others``: [{"path", "register_via"}] (``register_via``: another image of the session whose
    fit to the T1w this one shares, e.g. a T1map through its inv1). ``outputs``:
    {input path: {method: output path}}. ``dilate``: mm by which brain_neck is grown before the
    face warp may act (micapipe's 6 voxels of its 0.8 mm template is ~5 mm; we use mm so the
    protection does not depend on the image's voxel size). Every output has its input's grid,
    header and stored dtype; its brain guard voxels are bit-for-bit the input's (checked on the
    written file). Returns a JSON-able summary (see module docs); a failure on the reference
    raises ValueError naming the file, a failure on another image is recorded and the rest go on.
    ``reference_is_t1w`` False: another contrast stands in for a missing T1w, and its atlas
    registration is judged by head overlap, not by correlation with the T1w template.
    ``remove_ears``: deface zeroes the atlas ears ROI too (reface replaces the ears anyway).
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise ValueError(f"methods must be among {', '.join(METHODS)} (got {methods})")
    # Not its parents: a run folder that an interrupt removed must stay removed.
    if not os.path.isdir(work_dir):
        os.mkdir(work_dir)
    session_start = time.perf_counter()
    timings = _Timings()

    fits: dict[str, SessionRegistration | Exception] = {}
    read_while_fitting: dict[str, StoredImage] = {}  # each other image is read once
    try:
        start = time.perf_counter()
        t1w = read_image(reference)
        t1w_volume = t1w.real(0)
        timings.add("read", start)
        # ROBEX is the session's longest step and needs only the reference: it starts first, and
        # everything that does not need the subject's brain runs while it does (on the other core).
        brain_start = time.perf_counter()
        brain_later = native_brain.extract_later(t1w_volume, t1w.affine, work_dir=work_dir)
        start = time.perf_counter()
        atlas_images = load_atlas_images(atlas)
        timings.add("atlas_load", start)
        log(f"registering {Path(reference).name} to the atlas")

        def register_others() -> None:
            for entry in others:
                fits[entry["path"]] = _fit_other(entry, fits, read_while_fitting, t1w_volume, t1w.affine, seed,
                                                 work_dir, log, timings)

        reference_fit = fit_reference(t1w_volume, t1w.affine, atlas_images, robust=robust, seed=seed, work_dir=work_dir,
                                      log=log, reference_is_t1w=reference_is_t1w, timings=timings,
                                      brain_later=(brain_later, brain_start), meanwhile=register_others)
        atlas_fit, brain, quality = reference_fit.atlas_fit, reference_fit.brain, reference_fit.quality
        start = time.perf_counter()
        t1_item = _prepare(t1w, np.eye(4), None, atlas_images, atlas_fit.native_to_atlas, methods, brain, remove_ears)
        timings.add("masks", start)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{reference}: {' '.join(str(exc).split())}") from exc

    warp = None
    if "warpface" in methods:
        try:
            log("computing the face warp")
            start = time.perf_counter()
            # The warp's target is the atlas face alone: warpface reshapes the face; the shell is
            # pasted afterwards (face_methods.warpface). Aimed at the refaced shell too, the brow
            # pulls so hard that A's warp folds and, halved until it does not, keeps more of A.
            # The face zone stops at the atlas's field of view (masks.pull_masks): aimed at the
            # padding below it, the warp pulled B's chin up 30 mm (a Jacobian of 0.06).
            refaced = face_methods.reface(t1w_volume, t1_item.masks, t1w.zooms, shell=False)
            warp = warps.face_warp(
                t1w_volume, refaced, t1w.affine, t1_item.masks, dilate_mm_=dilate, seed=seed, work_dir=work_dir,
            )
            log(f"face warp: max {warp.summary['max_mm']:.1f} mm, min Jacobian {warp.summary['min_jacobian']:.2f}, "
                f"in {time.perf_counter() - start:.1f} s")
            timings.add("face_warp", start)
        except (ValueError, RuntimeError) as exc:
            # not bad input (the image was read and fitted): the bridge must not tell the user to
            # check the file
            raise RuntimeError(f"{reference}: face warp failed ({' '.join(str(exc).split())})") from exc

    if keep_work:
        _keep(work_dir, t1_item, "T1w", atlas_fit.native_to_atlas, warp)
    qc_inputs = _qc_inputs(work_dir, t1_item, "reference", atlas_fit.native_to_atlas)

    reference_record = {"path": reference, "registration": quality.as_dict(),
                        "native_brain": {**brain.as_dict(), "guard_mm": guard.margin_mm(brain.ok)}}
    records = _run_methods(t1_item, methods, outputs.get(reference, {}), warp, version, log,
                           reference_quality=quality, timings=timings, qc_inputs=qc_inputs)

    # Every other image's masks go through the reference's atlas fit: when that is poor, so are
    # theirs, whatever their own fit to the reference says.
    inherited = None
    if quality.flag == "poor":
        inherited = replace(quality, metric=f"reference_{quality.metric}")
    for number, entry in enumerate(others, start=1):
        path = entry["path"]
        wanted = outputs.get(path, {})
        try:
            fit = fits[path]
            if isinstance(fit, Exception):
                raise fit
            stored = read_while_fitting.pop(path, None)
            if stored is None:  # fitted through its partner
                start = time.perf_counter()
                stored = read_image(path)
                timings.add("read", start)
            start = time.perf_counter()
            item = _prepare(stored, fit.image_to_t1w, fit, atlas_images, atlas_fit.native_to_atlas, methods, brain, remove_ears)
            timings.add("masks", start)
            name = Path(path).name.split(".")[0]
            if keep_work:
                _keep(work_dir, item, name, atlas_fit.native_to_atlas @ fit.image_to_t1w, None)
            qc_inputs = _qc_inputs(work_dir, item, f"image{number}", atlas_fit.native_to_atlas @ fit.image_to_t1w)
            records += _run_methods(item, methods, wanted, warp, version, log, reference_quality=inherited,
                                    timings=timings, qc_inputs=qc_inputs)
        except Exception as exc:  # noqa: BLE001 - one bad image must not stop the session
            message = " ".join(str(exc).split()) or exc.__class__.__name__
            log(f"{Path(path).name}: {message}")
            records += [{"input": path, "method": m, "error": f"{path}: {message}"} for m in methods if m in wanted]
    timings["session"] = round(time.perf_counter() - session_start, 3)
    log(f"session done in {timings['session']:.1f} s")
    return {"reference": reference_record, "images": records, "timings": dict(timings)}


def _fit_other(entry: dict, fits: dict, read: dict, t1w_volume, t1w_affine, seed, work_dir, log,
               timings: _Timings) -> SessionRegistration | Exception:
    """One other image's rigid fit to the reference (or its partner's, e.g. the inv1 of a T1map,
    computed once and shared); the exception instead of the fit when it cannot be read or fitted,
    so that one bad image stops only its own outputs. An image read to be fitted is kept in
    ``read`` for its methods."""
    path = entry["path"]
    start = time.perf_counter()
    try:
        via = entry.get("register_via")
        if via:
            if not isinstance(fits.get(via), SessionRegistration):
                partner = read_image(via)
                fits[via] = register_to_t1w(partner.real(0), partner.affine, t1w_volume, t1w_affine, seed=seed, work_dir=work_dir)
            fit = fits[via]
        elif isinstance(fits.get(path), SessionRegistration):  # another image's partner, fitted already
            fit = fits[path]
        else:
            read_start = time.perf_counter()
            stored = read[path] = read_image(path)
            timings.add("read", read_start)
            start = time.perf_counter()
            fit = register_to_t1w(stored.real(0), stored.affine, t1w_volume, t1w_affine, seed=seed, work_dir=work_dir)
    except Exception as exc:  # noqa: BLE001 - recorded against this image's outputs
        return exc
    timings.add(f"{Path(path).name.split('.')[0]}_to_t1w", start)
    log(f"{Path(path).name} -> T1w: {'registered' if fit.registered else 'scanner coordinates'}"
        + (f" ({'; '.join(fit.notes)})" if fit.notes else ""))
    return fit


def _prepare(stored: StoredImage, image_to_t1w, fit, atlas_images, native_to_atlas, methods,
             brain: native_brain.NativeBrain, remove_ears: bool = False) -> _Image:
    """Pull the atlas masks onto this image's grid, with the subject's own brain carried through
    the image's rigid fit to the reference, and find the image's background level."""
    volume = stored.real(0)
    own_brain = brain.on_grid(stored.shape3d, stored.affine, image_to_t1w)
    masks = atlas_masks.pull_masks(
        atlas_images, stored.shape3d, stored.affine,
        native_to_atlas @ image_to_t1w, guard_mm=guard.margin_mm(brain.ok),
        with_face=bool({"reface", "warpface"} & set(methods)), native_brain=own_brain,
        with_ears=remove_ears and "deface" in methods, with_shell=bool({"reface", "warpface"} & set(methods)),
    )
    return _Image(
        stored=stored, image_to_t1w=image_to_t1w, registration=fit, masks=masks,
        background=face_methods.background_value(volume), native_brain=own_brain if brain.ok else None,
    )


@dataclass(frozen=True)
class ReferenceFit:
    """The reference's affine fit to the atlas, the subject's own brain, and the fit's verdict
    (``quality``: the fit's similarity with the fit check's flag and evidence)."""

    atlas_fit: AtlasRegistration
    brain: native_brain.NativeBrain
    check: fit_check.FitCheck
    quality: Quality


def fit_reference(volume: np.ndarray, affine: np.ndarray, atlas_images, *, robust: bool = False, seed: int = 1,
                  work_dir: str | None = None, log: Callable[[str], None] = lambda msg: None,
                  reference_is_t1w: bool = True, timings: dict | None = None,
                  brain_later: tuple[Future, float] | None = None,
                  meanwhile: Callable[[], None] | None = None) -> ReferenceFit:
    """Register the reference (scanner space of ``affine``) to the atlas while its own brain is
    extracted in the background, then judge the fit by evidence that does not come through it.

    ``brain_later``: that extraction already started (its future and start time), else it starts
    here; ``meanwhile``: more work to do after the registration while the extraction goes on.
    """
    timings = _Timings() if timings is None else timings
    if brain_later is None:
        brain_later = (native_brain.extract_later(volume, affine, work_dir=work_dir), time.perf_counter())
    brain_future, brain_start = brain_later
    start = time.perf_counter()
    atlas_fit = register_to_atlas(
        volume, affine, atlas_images.template, atlas_images.affine, atlas_images.head,
        robust=robust, seed=seed, work_dir=work_dir, log=log, t1w_contrast=reference_is_t1w,
    )
    timings.add("t1w_to_atlas", start)
    start = time.perf_counter()
    eyes = trusted_eyes(volume, affine)  # the fit check's eye witness needs no brain: found meanwhile
    timings.add("fit_check", start)
    if meanwhile is not None:
        meanwhile()
    brain = brain_future.result()
    if brain.ok and not atlas_fit.t1_like:
        # ROBEX is trained on T1w heads: on other contrasts its mask takes skull, scalp, orbits and
        # even the face, which would shield the face from removal. Not used: the guard is the
        # atlas brain alone, and the fit has no brain witness (docs/brain-guard.md).
        brain = replace(brain, mask=np.zeros_like(brain.mask), ok=False,
                        note=f"not a T1-like contrast: ROBEX's mask ({brain.volume_ml:.0f} ml) is not used")
    timings["native_brain"] = round(time.perf_counter() - brain_start, 3)
    log(f"native brain ({brain.method}): " + (f"{brain.volume_ml:.0f} ml in {brain.seconds:.1f} s" if brain.ok else brain.note))
    start = time.perf_counter()
    check = _check_fit(eyes, atlas_fit, brain, atlas_images)
    log(f"fit check: {check.flag}" + (f" ({check.reason})" if check.reason else "") + f"; witnesses {check.witnesses}")
    timings.add("fit_check", start)
    quality = replace(atlas_fit.quality, flag=check.flag, check=check.as_dict())
    return ReferenceFit(atlas_fit=atlas_fit, brain=brain, check=check, quality=quality)


def _check_fit(eyes, atlas_fit, brain: native_brain.NativeBrain, atlas_images) -> fit_check.FitCheck:
    """The reference's fit judged by evidence that does not come through it (fit_check); ``eyes``:
    the eye globes found in the reference itself (:func:`micanon.landmarks.trusted_eyes`).

    ROBEX's brain speaks only for a T1-like reference (:func:`fit_reference` drops it otherwise).
    """
    trusted = brain if brain.ok else None
    facts = fit_check.brain_evidence(brain, atlas_images, atlas_fit.native_to_atlas) if trusted else None
    return fit_check.judge(atlas_fit.quality, trusted, facts, eyes, atlas_images.eyes,
                           atlas_fit.native_to_atlas)


def _run_methods(item: _Image, methods, wanted: dict, warp, version, log, reference_quality: Quality | None = None,
                 timings: _Timings | None = None, qc_inputs: dict | None = None) -> list[dict]:
    records = []
    sampling = None
    if item.masks.guard_overlap:
        log(f"{Path(item.stored.path).name}: face ROI met the brain guard on {item.masks.guard_overlap} voxels; the guard kept them")
    for method in methods:
        if method not in wanted:
            continue
        start = time.perf_counter()
        out_path = wanted[method]
        try:
            output_path_ok(out_path)
            if method == "warpface" and sampling is None:
                sampling = warps.warp_sampling(warp, item.stored.shape3d, item.stored.affine, item.image_to_t1w)
            raw = _apply(item, method, sampling)
            raw = guard.protect(item.stored.raw, raw, item.masks.brain_guard)
            write_like(item.stored, raw, out_path, descrip_for(version, method))
            written = read_image(out_path)
            check = guard.count_changed(item.stored.raw, written.raw, item.masks.brain_guard)
            quality = reference_quality or item.registration.quality
            record = {
                "input": item.stored.path, "method": method, "output": out_path,
                "brain_voxels_changed": check.brain_voxels_changed, "guard_voxels": check.guard_voxels,
                **_native_brain_counts(item, written.raw),
                "face_roi_voxels": int(item.masks.face_roi.sum()),
                "guard_overlap_voxels": item.masks.guard_overlap,
                "face_roi_in_native_brain_voxels": item.masks.face_roi_in_native_brain,
                "registered": True if item.registration is None else item.registration.registered,
                "registration": quality.as_dict(),
                "dtype": str(item.stored.raw.dtype), "seconds": round(time.perf_counter() - start, 2),
                **(qc_inputs or {}),
            }
            if method == "warpface":  # how far it moved the face and how close it came to folding
                record["warp"] = warp.summary
            if timings is not None:
                timings.add(method, start)
            log(f"{Path(item.stored.path).name} {method}: {check.brain_voxels_changed} brain voxels changed "
                f"of {check.guard_voxels}, {record['seconds']} s")
        except Exception as exc:  # noqa: BLE001 - reported per output
            record = {"input": item.stored.path, "method": method, "error": f"{out_path}: {' '.join(str(exc).split())}"}
            if reference_quality is not None:
                raise ValueError(f"{item.stored.path}: {method} failed ({' '.join(str(exc).split())})") from exc
        records.append(record)
    return records


def _native_brain_counts(item: _Image, written_raw: np.ndarray) -> dict:
    """Voxels changed inside the subject's own brain alone, and within ``NEAR_BRAIN_MM`` of it
    (None without a native brain estimate)."""
    if item.native_brain is None:
        return {"native_brain_voxels_changed": None, "near_brain_voxels_changed": None}
    if item.near_brain is None:  # once per image, whatever the number of its outputs
        item.near_brain = grid.dilate_mm(item.native_brain, item.stored.zooms, NEAR_BRAIN_MM)
    return {
        "native_brain_voxels_changed": guard.count_changed(item.stored.raw, written_raw, item.native_brain).brain_voxels_changed,
        "near_brain_voxels_changed": guard.count_changed(item.stored.raw, written_raw, item.near_brain).brain_voxels_changed,
    }


def _apply(item: _Image, method: str, sampling) -> np.ndarray:
    """Stored-value output of one method for every volume of the image."""
    stored = item.stored
    volumes = []
    plate = plate_value = None
    if method == "deface":
        fill = to_stored(np.array([item.background], np.float32), stored)[0]
        plate, level = face_methods.deface_plate(stored.real(0), item.masks.face_roi, stored.zooms)
        plate_value = None if level is None else to_stored(np.array([level], np.float32), stored)[0]
    for v in range(stored.volumes):
        if method == "deface":
            volumes.append(face_methods.deface(stored.volume_raw(v), item.masks.face_roi, fill, item.masks.ears,
                                               plate, plate_value))
            continue
        real = stored.real(v)
        if method == "reface":
            out = face_methods.reface(real, item.masks, stored.zooms)
        else:
            out = face_methods.warpface(real, sampling, item.masks, stored.zooms)
        volumes.append(to_stored(out, stored))
    if stored.raw.ndim == 3:
        return volumes[0]
    return np.stack(volumes, axis=-1).reshape(stored.raw.shape, order="F")


def _qc_inputs(work_dir: str, item: _Image, name: str, grid_to_atlas: np.ndarray) -> dict:
    """What QC needs of this image besides its files: its native brain guard and face ROI, and
    (reface, warpface) the atlas head on its grid, the face they aim at in this camera (written to
    work_dir, uncompressed: they live only as long as the run); and the scanner -> atlas affine
    (RAS mm) that views the head upright."""
    paths = {}
    for key, label, mask in (("brain_guard_mask", "brainGuard", item.masks.brain_guard),
                             ("face_roi_mask", "faceRoi", item.masks.face_roi)):
        path = os.path.join(work_dir, f"qc_{name}_desc-{label}_mask.nii")
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), item.stored.affine), path)
        paths[key] = path
    if item.masks.atlas_head is not None:
        paths["atlas_head_image"] = os.path.join(work_dir, f"qc_{name}_desc-atlasHead_T1w.nii")
        nib.save(nib.Nifti1Image(item.masks.atlas_head, item.stored.affine), paths["atlas_head_image"])
    return {**paths, "image_to_atlas": np.asarray(grid_to_atlas).round(8).tolist()}


def _keep(work_dir: str, item: _Image, name: str, grid_to_atlas: np.ndarray, warp) -> None:
    """Write this image's native masks, its transforms and (for the T1w) the warp to work_dir."""
    header = nib.Nifti1Header()
    for label, mask in (("faceRoi", item.masks.face_roi), ("brainGuard", item.masks.brain_guard),
                        ("brainNeck", item.masks.brain_neck), ("faceZone", item.masks.face_zone)):
        if mask is None:
            continue
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), item.stored.affine, header), os.path.join(work_dir, f"{name}_desc-{label}_mask.nii.gz"))
    with open(os.path.join(work_dir, f"{name}_xfm.json"), "w") as handle:
        json.dump({"image_to_t1w": item.image_to_t1w.tolist(), "image_to_atlas": grid_to_atlas.tolist(),
                   "convention": "4x4 RAS world mm; maps points of the first space to the second"}, handle, indent=1)
    if warp is not None:
        nib.save(nib.Nifti1Image(warp.displacement, warp.affine), os.path.join(work_dir, f"{name}_desc-faceWarp_xfm.nii.gz"))
