"""deface / reface / warpface as functions of one image volume, its native masks and a warp.

Every array lives on the native grid of the image being anonymized; the methods take images,
masks and a warp and return images. Nothing here reads or writes files.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from micanon.anonymize.masks import NativeMasks
from micanon.anonymize.warp import WarpSampling
from micanon.render import pick_skin_threshold
from micanon.space.grid import bounding_box, dilate_mm, distance_inside_mm, distance_outside_mm, edt_mm

# reface blends the atlas face in over this distance from the replaced zone's edge, so where the
# person's temple or brow sits a few mm off the atlas's the skin slopes across instead of showing
# a step line; the eyes, nose and mouth lie deeper in the zone.
REFACE_FEATHER_MM = 8.0
# ... and over at least this many voxels of the image's coarsest axis: on thick slices an 8 mm
# blend spans two or three slices and the staircase of the zone's edge shows as a thin crease
# across the temple. Fine grids keep REFACE_FEATHER_MM.
REFACE_FEATHER_VOXELS = 6
# Fewer air or tissue voxels than this in the face ROI: match the intensities in one class.
MIN_CLASS_SAMPLES = 100
# The head's shell fades in over this distance beyond the kept region around the brain (its
# inner edge lies inside the skull, so no step shows on the skin).
SHELL_FEATHER_MM = 6.0
# The pasted atlas is an average, smoother than any scan: noise of the scan's own level (air and
# tissue apart) is added to it, from a fixed seed so that runs are reproducible.
NOISE_SEED = 20211


# ----------------------------------------------------------------------------- deface


def background_value(volume: np.ndarray) -> float:
    """The value deface writes: 0, or the image minimum where 0 is not the background.

    The background is read from the outer two-voxel shell of the volume (real units).
    """
    lo = float(np.nanmin(volume))
    if lo > 0:
        return lo
    shell = np.concatenate([
        volume[:2].ravel(), volume[-2:].ravel(), volume[:, :2].ravel(), volume[:, -2:].ravel(),
        volume[:, :, :2].ravel(), volume[:, :, -2:].ravel(),
    ])
    background = float(np.nanmedian(shell))
    return 0.0 if abs(background) <= abs(background - lo) else lo


def deface(volume: np.ndarray, face_roi: np.ndarray, fill, ears: np.ndarray | None = None,
           plate: np.ndarray | None = None, plate_fill=None) -> np.ndarray:
    """The volume with every face-ROI voxel (and ``ears`` voxel, with --remove-ears) set to
    ``fill``, then the ``plate`` (:func:`deface_plate`, inside the ROI) set to ``plate_fill``
    (same dtype, native grid)."""
    out = volume.copy()
    out[face_roi] = fill
    if ears is not None:
        out[ears] = fill
    if plate is not None and plate_fill is not None:
        out[plate & face_roi] = plate_fill
    return out


# The cut that deface leaves opens the orbits, the nasal cavity and the sinuses, and renders show
# them as eye-like holes that face detectors fire on. As FreeSurfer's mideface fills what it
# removes, deface covers the cut with a plate this thick (mm) of even tissue-level intensity,
# just in front of what stays, so the cut renders as a smooth surface and shows no pattern.
PLATE_MM = 3.0
# The head envelope whose cavities the plate covers: the head closed by this distance (mm).
ENVELOPE_CLOSE_MM = 15.0


def deface_plate(volume: np.ndarray, face_roi: np.ndarray, zooms) -> tuple[np.ndarray, float | None]:
    """The plate that covers deface's cut (mask on the native grid, inside ``face_roi``) and its value.

    The plate is the face-ROI voxels within ``PLATE_MM`` (at least two voxels) of the kept head, where the kept head
    is the input's head envelope (its tissue above the skin level, closed by
    ``ENVELOPE_CLOSE_MM`` so the cavities behind the face count as head) outside the ROI; the
    plate itself stays inside the envelope, so it is not a box in the air in front of the face.
    Its value is the input's median tissue level there. Without a skin surface (an angiogram) or
    a face ROI: an empty plate and None. Only the ROI's box and a margin are processed.
    """
    plate = np.zeros(face_roi.shape, bool)
    skin = pick_skin_threshold(volume, tuple(float(z) for z in zooms))
    if not skin.ok or not face_roi.any():
        return plate, None
    zooms = np.asarray(zooms, float)
    lo, hi = bounding_box(face_roi)
    pad = np.ceil((ENVELOPE_CLOSE_MM + PLATE_MM + 2) / zooms).astype(int)
    box = tuple(slice(a, b) for a, b in zip(np.maximum(lo - pad, 0), np.minimum(hi + pad, face_roi.shape)))
    tissue = volume[box] > skin.value
    grown = dilate_mm(tissue, zooms, ENVELOPE_CLOSE_MM)
    envelope = (edt_mm(grown, zooms) > ENVELOPE_CLOSE_MM) | tissue
    roi = face_roi[box]
    kept = envelope & ~roi
    if not kept.any():
        return plate, None
    thickness = max(PLATE_MM, 2.0 * float(zooms.max()))  # at least two voxels: one leaks between diagonals
    near_kept = dilate_mm(kept, zooms, thickness)
    plate[box] = roi & envelope & near_kept
    values = volume[box][kept & tissue & dilate_mm(roi, zooms, 2 * thickness)]
    if values.size == 0:
        return plate, None
    return plate, float(np.median(values))


# ----------------------------------------------------------------------------- reface


def intensity_map(atlas_values: np.ndarray, image_values: np.ndarray, atlas_skin: float | None = None,
                  image_skin: float | None = None):
    """Monotone map from atlas intensities to this image's, by matching quantiles.

    Both samples cover the same native voxels (the face ROI), air included, so any contrast
    works: a T1w gets its own skin and fat levels, a TOF angiogram (static tissue dark) gets a
    dark face. With both skin levels, air and tissue are matched apart and ``atlas_skin`` maps
    to ``image_skin``: the atlas skin surface stays the surface even where the person's face
    fills less (or more) of the ROI than the atlas face does; otherwise the atlas eyelids would
    map below this image's skin level and show as holes. Ties (atlas air, all 0) map to the mean
    of the image quantiles they span. Returns a function of an array.
    """
    q = np.linspace(0.0, 100.0, 201)
    src = np.percentile(atlas_values, q)
    dst = np.percentile(image_values, q)
    if atlas_skin is not None and image_skin is not None:
        classes = [
            (atlas_values[atlas_values <= atlas_skin], image_values[image_values <= image_skin]),
            (atlas_values[atlas_values > atlas_skin], image_values[image_values > image_skin]),
        ]
        if all(min(a.size, b.size) >= MIN_CLASS_SAMPLES for a, b in classes):
            (a_air, i_air), (a_tissue, i_tissue) = classes
            q = np.linspace(0.0, 100.0, 101)
            src = np.concatenate([np.percentile(a_air, q), [atlas_skin], np.percentile(a_tissue, q)])
            dst = np.concatenate([
                np.minimum(np.percentile(i_air, q), image_skin), [image_skin], np.maximum(np.percentile(i_tissue, q), image_skin),
            ])
    levels, which = np.unique(src, return_inverse=True)
    targets = np.bincount(which, weights=dst) / np.bincount(which)

    def apply(values: np.ndarray) -> np.ndarray:
        return np.interp(values, levels, targets).astype(np.float32)

    return apply


def reface(volume: np.ndarray, masks: NativeMasks, zooms, shell: bool = True) -> np.ndarray:
    """Real-valued volume with the face and the head's outer shell replaced by the atlas's, in
    this image's intensities.

    The face zone and (``shell``) the shell (:class:`NativeMasks`: everything from the neck up
    more than a margin beyond the brain guard, and the ears) take the atlas (its closed face and
    its template), mapped by :func:`intensity_map` (atlas vs this image over the replaced voxels;
    air and tissue apart, anchored on the atlas template's and this image's skin levels), with
    the scan's own noise added (:func:`scan_noise`), fading in by :func:`reface_weight` from the
    zone's edge so the new head joins the kept one without a step. The guard is never touched.
    ``shell`` False replaces the face alone (the target of the face warp).
    """
    if masks.face is None:
        raise ValueError("reface needs the atlas face pulled to the native grid")
    out = volume.astype(np.float32, copy=True)
    face_zone = masks.face_zone
    face_sample = masks.face_roi if masks.face_roi.sum() >= 100 else face_zone
    if face_sample.sum() < 100:  # no face in this field of view: nothing to replace
        return out
    # Air and tissue are matched apart only where this image has a skin surface at all (not a
    # TOF angiogram, whose Otsu level splits vessels from everything else).
    skin = pick_skin_threshold(volume, tuple(float(z) for z in zooms))
    skin_value = skin.value if skin.ok else None
    use_shell = shell and masks.shell_zone is not None and masks.paste is not None and masks.shell_zone.any()
    if not use_shell:
        mapping = intensity_map(masks.face[face_sample], volume[face_sample], masks.atlas_skin, skin_value)
        weight = reface_weight(face_zone, zooms)[face_zone]
        out[face_zone] = weight * mapping(masks.face[face_zone]) + (1 - weight) * out[face_zone]
        return out
    # The face and the shell are matched apart (each over its own voxels): the face's levels are
    # not the scalp's, and lips matched over the whole head fall below the skin as holes.
    weight = _shell_weight(face_zone, masks, zooms)
    _paste(out, volume, face_zone, face_sample, weight, masks, skin_value)
    _paste(out, volume, masks.shell_zone, _shell_sample(masks.shell_zone, weight), weight, masks, skin_value)
    return out


def replace_shell(out: np.ndarray, volume: np.ndarray, masks: NativeMasks, zooms) -> np.ndarray:
    """``out`` with the head's outer shell and the ears replaced by the atlas's, as :func:`reface`
    replaces them (same zone, weights, intensity match to ``volume`` and noise); the face zone
    and everything else keep ``out``'s values. ``out`` unchanged without a shell."""
    if masks.shell_zone is None or masks.paste is None or not masks.shell_zone.any():
        return out
    skin = pick_skin_threshold(volume, tuple(float(z) for z in zooms))
    weight = _shell_weight(masks.face_zone, masks, zooms)
    shell = masks.shell_zone
    sample = _shell_sample(shell, weight)  # reface's: the same intensity match
    # The face zone keeps the person's own (warped) face, whose brow and temples are not the atlas's:
    # the shell takes the atlas only gradually away from it, as reface's zone edges do.
    weight[shell] *= distance_outside_mm(masks.face_zone, zooms, _feather(zooms))[shell] / _feather(zooms)
    out = out.astype(np.float32, copy=True)
    _paste(out, volume, shell, sample, weight, masks, skin.value if skin.ok else None)
    return out


def _shell_sample(shell_zone: np.ndarray, weight: np.ndarray) -> np.ndarray:
    sample = shell_zone & (weight >= 0.5)
    return sample if sample.sum() >= 100 else shell_zone


def _paste(out: np.ndarray, volume: np.ndarray, zone: np.ndarray, sample: np.ndarray, weight: np.ndarray,
           masks: NativeMasks, skin_value: float | None) -> None:
    """Blend the atlas (``masks.paste``, matched to ``volume`` over ``sample``, with the scan's noise)
    into ``out`` over ``zone`` by ``weight``, in place."""
    mapping = intensity_map(masks.paste[sample], volume[sample], masks.atlas_skin, skin_value)
    pasted = mapping(masks.paste[zone]) + scan_noise(volume, sample, mapping(masks.paste[zone]), skin_value)
    w = weight[zone]
    out[zone] = w * pasted + (1 - w) * out[zone]


def _shell_weight(face_zone: np.ndarray, masks: NativeMasks, zooms) -> np.ndarray:
    """How much of the atlas each voxel takes when the shell is replaced too: the face zone's
    ramp (:func:`reface_weight`) within it, ``SHELL_FEATHER_MM`` from the kept region in the
    shell, times the shell's own fade towards the neck."""
    zone = face_zone | masks.shell_zone
    inside = distance_inside_mm(zone, zooms, max(SHELL_FEATHER_MM, _feather(zooms)))
    weight = np.where(face_zone, np.clip(inside / _feather(zooms), 0, 1), 0).astype(np.float32)
    shell = masks.shell_zone
    weight[shell] = np.clip(inside[shell] / SHELL_FEATHER_MM, 0, 1) * masks.shell_weight[shell]
    return weight


def scan_noise(volume: np.ndarray, sample: np.ndarray, pasted: np.ndarray, skin: float | None) -> np.ndarray:
    """Noise for the pasted voxels at this scan's own level (seeded: same input, same output).

    The level is read in the scan's air among the replaced voxels: the robust spread (median
    absolute deviation) of its high-pass residual (the scan less its 1-voxel Gaussian blur;
    white noise keeps ~95% of its spread through that filter). Air in a magnitude image holds
    Rayleigh noise, whose spread is 0.655 of the Gaussian noise in tissue: tissue gets the
    larger level. Air far from any tissue carries no anatomy, so the estimate is not inflated by
    edges the way a residual over tissue is. Without a skin level or enough air: no noise.
    """
    noise = np.zeros(pasted.shape, np.float32)
    if skin is None:
        return noise
    air = sample & (volume <= skin)
    air &= ~ndimage.binary_dilation(sample & (volume > skin), iterations=2)
    if air.sum() < MIN_CLASS_SAMPLES:
        return noise
    lo, hi = bounding_box(air)
    box = tuple(slice(max(a - 3, 0), b + 3) for a, b in zip(lo, hi))
    blurred = np.zeros(volume.shape, np.float32)
    blurred[box] = ndimage.gaussian_filter(volume[box].astype(np.float32), 1.0)
    residual = volume[air] - blurred[air]
    spread = 1.4826 * float(np.median(np.abs(residual - np.median(residual)))) / 0.946
    rng = np.random.default_rng(NOISE_SEED)
    noise = rng.standard_normal(pasted.shape).astype(np.float32)
    noise *= np.where(pasted > skin, spread / 0.655, spread).astype(np.float32)
    return noise


def reface_weight(zone: np.ndarray, zooms) -> np.ndarray:
    """How much of the atlas face each voxel takes (0 outside ``zone``, rising to 1 inside).

    A linear ramp with the distance from the zone's edge, over ``REFACE_FEATHER_MM`` or
    ``REFACE_FEATHER_VOXELS`` voxels of the coarsest axis, whichever is longer.
    """
    feather = _feather(zooms)
    return np.clip(distance_inside_mm(zone, zooms, feather) / feather, 0, 1)


def _feather(zooms) -> float:
    return max(REFACE_FEATHER_MM, REFACE_FEATHER_VOXELS * float(np.max(zooms)))


# ----------------------------------------------------------------------------- warpface


def warpface(volume: np.ndarray, sampling: WarpSampling, masks: NativeMasks | None = None, zooms=None) -> np.ndarray:
    """Real-valued volume with its face voxels resampled through the face warp (native grid), and
    (with ``masks`` holding the shell) the ears and the head's outer shell replaced as
    :func:`reface` replaces them (:func:`replace_shell`): the warp reshapes the face only, and
    a person's ears, scalp and the scan's own skin texture there identify a profile view."""
    out = volume.astype(np.float32, copy=True)
    if sampling.coords.size:
        out[sampling.moved] = ndimage.map_coordinates(
            volume.astype(np.float32), sampling.coords, order=3, mode="nearest", prefilter=True,
        )
    if masks is not None:
        out = replace_shell(out, volume, masks, zooms)
    return out
