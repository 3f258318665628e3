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
from micanon.space.grid import distance_inside_mm

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


def deface(volume: np.ndarray, face_roi: np.ndarray, fill) -> np.ndarray:
    """The volume with every face-ROI voxel set to ``fill`` (same dtype, native grid)."""
    out = volume.copy()
    out[face_roi] = fill
    return out


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


def reface(volume: np.ndarray, masks: NativeMasks, zooms) -> np.ndarray:
    """Real-valued volume with the face zone replaced by the atlas face in this image's intensities.

    Inside brain_neck (and the guard) the input is kept. In the face zone the atlas face,
    mapped by :func:`intensity_map` (atlas face vs this image over the face ROI; air and tissue
    apart, anchored on the atlas template's and this image's skin levels), fades in
    by :func:`reface_weight` from the zone edge, so the new face joins the scalp without a step.
    """
    if masks.face is None:
        raise ValueError("reface needs the atlas face pulled to the native grid")
    out = volume.astype(np.float32, copy=True)
    zone = masks.face_zone
    sample = masks.face_roi if masks.face_roi.sum() >= 100 else zone
    if sample.sum() < 100:  # no face in this field of view: nothing to replace
        return out
    # Air and tissue are matched apart only where this image has a skin surface at all (not a
    # TOF angiogram, whose Otsu level splits vessels from everything else).
    skin = pick_skin_threshold(volume, tuple(float(z) for z in zooms))
    mapping = intensity_map(masks.face[sample], volume[sample], masks.atlas_skin, skin.value if skin.ok else None)
    weight = reface_weight(zone, zooms)[zone]
    out[zone] = weight * mapping(masks.face[zone]) + (1 - weight) * out[zone]
    return out


def reface_weight(zone: np.ndarray, zooms) -> np.ndarray:
    """How much of the atlas face each voxel takes (0 outside ``zone``, rising to 1 inside).

    A linear ramp with the distance from the zone's edge, over ``REFACE_FEATHER_MM`` or
    ``REFACE_FEATHER_VOXELS`` voxels of the coarsest axis, whichever is longer.
    """
    feather = max(REFACE_FEATHER_MM, REFACE_FEATHER_VOXELS * float(np.max(zooms)))
    return np.clip(distance_inside_mm(zone, zooms, feather) / feather, 0, 1)


# ----------------------------------------------------------------------------- warpface


def warpface(volume: np.ndarray, sampling: WarpSampling) -> np.ndarray:
    """Real-valued volume with its face voxels resampled through the face warp (native grid)."""
    out = volume.astype(np.float32, copy=True)
    if sampling.coords.size:
        out[sampling.moved] = ndimage.map_coordinates(
            volume.astype(np.float32), sampling.coords, order=3, mode="nearest", prefilter=True,
        )
    return out
