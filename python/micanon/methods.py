"""deface / reface / warpface as functions of one image volume, its native masks and a warp.

Every array here lives on the voxel grid of the image being anonymized ("native grid") unless
its name or docstring says otherwise. Atlas-space masks are brought onto that grid by
:func:`pull_masks` through a world-to-world matrix (``grid_to_atlas``: native scanner RAS ->
atlas RAS). Nothing here reads or writes files.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass

import ants
import numpy as np
from scipy import ndimage

from micanon.register import coarse_grid, reproducible_ants, resample, to_ants, zooms_of
from micanon.render import pick_skin_threshold

# Voxels this far (mm) around the atlas face ROI, outside the head, are replaced by reface
# too: the person's nose or chin may stick out beyond the atlas face, into atlas "air".
FACE_ZONE_MM = 20.0
# Grid of the warpface registration: the face needs no finer detail to stop being the person's.
WARP_GRID_MM = 2.0
# SyN settings of warpface (levels at 8, 4, 2 mm on the 2 mm box). Tried on person A against
# the closed-skin reface target: MI with a 1.0 step moves the face up to ~12 mm and stays smooth
# in 11 s; CC (65 s) and mean squares (21 s, 24 mm, torn eyelids) moved the identity no further.
WARP_METRIC = ("mattes", 32)
WARP_ITERATIONS = (150, 100, 50)
WARP_GRAD_STEP = 1.0
WARP_FLOW_SIGMA = 3.0
# The warp fades from 0 at the dilated brain_neck boundary to full strength over this distance,
# so the face does not tear away from the scalp it joins.
WARP_TAPER_MM = 6.0
# The integrated warp (:func:`flow`) is checked for folds; a field that still folds (a rough SyN
# field, e.g. with a larger step) is smoothed by one grid step and integrated again: this many
# attempts at most before the warp is refused.
WARP_SMOOTHINGS = 5
# reface blends the atlas face in over this distance from the replaced zone's edge, so where the
# person's temple or brow sits a few mm off the atlas's the skin slopes across instead of showing
# a step line (seen at 4 mm on person A); the eyes, nose and mouth lie deeper in the zone.
REFACE_FEATHER_MM = 8.0
# ... and over at least this many voxels of the image's coarsest axis: on 2.4 mm slices (person A's
# PDw) an 8 mm blend spans three slices, and the staircase of the zone's edge showed as a thin
# crease across the temple; 6 slices (14.4 mm) remove it. Fine grids keep REFACE_FEATHER_MM.
REFACE_FEATHER_VOXELS = 6
# The atlas face is an average: its eyelids and nostril rims are too thin and blurred to hold a
# skin surface, and pasted as they are they show as empty sockets. Gaps in its skin up to twice
# this size (mm) are closed, and the outer SKIN_SHELL_MM of the closed face are lifted to skin level.
CLOSE_FACE_MM = 10.0
SKIN_SHELL_MM = 5.0
# Fewer air or tissue voxels than this in the face ROI: match the intensities in one class.
MIN_CLASS_SAMPLES = 100
# brain_neck is pulled only this far around the face zone; beyond, everything counts as kept.
BRAIN_NECK_MARGIN_MM = 40.0
# Face-ROI voxels of a thick slice count as face when at least this fraction of the voxel is face.
FACE_FRACTION = 0.5


@dataclass(frozen=True)
class AtlasImages:
    """The atlas roles as arrays on the atlas grid (atlas RAS ``affine``), plus derived masks.

    ``face_zone`` is the face ROI grown by ``FACE_ZONE_MM`` and limited to outside brain_neck:
    everything reface may replace. ``boxes`` holds each mask's voxel bounding box [lo, hi), so
    pulling to a native grid only resamples where the mask can be (5x faster on a head).
    ``skin`` and ``closed_face`` (the face with a closed skin, :func:`close_face_skin`, what
    reface pastes) are computed on first use: deface needs neither (~1 s saved).
    """

    template: np.ndarray
    face_roi: np.ndarray
    brain: np.ndarray
    brain_neck: np.ndarray
    face: np.ndarray
    face_zone: np.ndarray
    head: np.ndarray
    affine: np.ndarray
    boxes: dict

    @functools.cached_property
    def skin(self) -> float:
        """The template's air/skin level (render.pick_skin_threshold)."""
        return pick_skin_threshold(self.template, tuple(float(z) for z in zooms_of(self.affine))).value

    @functools.cached_property
    def closed_face(self) -> np.ndarray:
        """The atlas face with a closed skin surface, so pasted it reads as closed eyes, not sockets."""
        return close_face_skin(self.template, self.face, zooms_of(self.affine), self.skin)


def atlas_images(template, face_roi, brain, brain_neck, face, affine) -> AtlasImages:
    """Bundle atlas arrays (atlas grid) and derive the reface zone, the head mask and the boxes."""
    face_roi = np.asarray(face_roi) > 0
    brain_neck = np.asarray(brain_neck) > 0
    zooms = zooms_of(affine)
    grown = dilate_mm(face_roi, zooms, FACE_ZONE_MM)
    template = np.asarray(template, np.float32)
    face = np.asarray(face, np.float32)
    head = brain_neck | (face_roi & (face > 0))
    brain = np.asarray(brain) > 0
    face_zone = grown & ~brain_neck
    boxes = {name: _bounding_box(mask) for name, mask in
             (("brain", brain), ("face_roi", face_roi), ("face_zone", face_zone), ("face", face > 0))}
    # brain_neck only matters near the face: elsewhere everything is kept anyway
    margin = np.ceil(BRAIN_NECK_MARGIN_MM / zooms).astype(int)
    lo, hi = boxes["face_zone"]
    boxes["brain_neck"] = (np.maximum(lo - margin, 0), np.minimum(hi + margin, face_roi.shape))
    return AtlasImages(
        template=template, face_roi=face_roi, brain=brain,
        brain_neck=brain_neck, face=face, face_zone=face_zone,
        head=head, affine=np.asarray(affine, float), boxes=boxes,
    )


def close_face_skin(template: np.ndarray, face: np.ndarray, zooms, skin: float) -> np.ndarray:
    """The atlas face (atlas grid) with a closed skin: gaps shut, the outer shell at skin level.

    The template's skin (above ``skin``, opened once to drop the average's ringing lines in the
    air) is closed by ``CLOSE_FACE_MM``; face voxels within ``SKIN_SHELL_MM`` under that closed
    surface and darker than the template's median skin are raised to it. Deeper voxels (the
    eyeballs behind the lids, the sinuses) keep their values. Only the face's bounding box plus
    a margin is processed.
    """
    out = face.copy()
    if not (face > 0).any():
        return out
    zooms = np.asarray(zooms, float)
    lo, hi = _bounding_box(face > 0)
    pad = np.ceil((CLOSE_FACE_MM + 2) / zooms).astype(int)
    box = tuple(slice(a, b) for a, b in zip(np.maximum(lo - pad, 0), np.minimum(hi + pad, face.shape)))
    tissue = ndimage.binary_opening(template[box] > skin)
    far_outside = ndimage.distance_transform_edt(~tissue, sampling=zooms) > CLOSE_FACE_MM
    # >= (not >): a voxel exactly CLOSE_FACE_MM from the far air is on the closed surface
    closed = (ndimage.distance_transform_edt(~far_outside, sampling=zooms) >= CLOSE_FACE_MM) | tissue
    depth = ndimage.distance_transform_edt(closed, sampling=zooms)
    shell = closed & (depth <= SKIN_SHELL_MM)
    level = float(np.median(template[box][tissue & shell]))
    sub = out[box]
    lift = shell & (sub > 0) & (sub < level)
    sub[lift] = level
    return out


def _bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel bounds [lo, hi) of a mask's non-zero part (empty box for an empty mask)."""
    if not mask.any():
        return np.zeros(3, int), np.zeros(3, int)
    axes = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != k))) for k in range(3)]
    return np.array([a[0] for a in axes]), np.array([a[-1] + 1 for a in axes])


@dataclass(frozen=True)
class NativeMasks:
    """Atlas masks on one image's native grid (boolean), with the atlas face intensities.

    ``face_roi`` never overlaps ``brain_guard``: where they met, the guard won and
    ``guard_overlap`` counts the voxels taken back from the face ROI.
    """

    face_roi: np.ndarray
    brain_guard: np.ndarray
    brain_neck: np.ndarray | None
    face_zone: np.ndarray | None
    face: np.ndarray | None
    guard_overlap: int
    atlas_skin: float | None = None


def dilate_mm(mask: np.ndarray, zooms, mm: float) -> np.ndarray:
    """Grow a boolean mask by ``mm`` millimetres (anisotropic voxels respected).

    The distance transform runs on the mask's bounding box plus margin only (5x faster on a head).
    """
    mask = np.asarray(mask, bool)
    if mm <= 0 or not mask.any():
        return mask.copy()
    zooms = np.asarray(zooms, float)
    pad = np.ceil(mm / zooms).astype(int) + 1
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - pad, 0)
    hi = np.minimum(idx.max(0) + pad + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = np.zeros_like(mask)
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=zooms) <= mm
    return out


def pull_fraction(
    mask: np.ndarray,
    mask_affine: np.ndarray,
    shape,
    affine: np.ndarray,
    grid_to_atlas: np.ndarray,
    box: tuple[np.ndarray, np.ndarray] | None = None,
    outside: float = 0.0,
    intensities: bool = False,
) -> np.ndarray:
    """Fraction of each native voxel covered by an atlas mask (float32 in [0, 1], native grid).

    Thick voxels are supersampled along their long axes (up to 4 samples per mm of atlas voxel)
    so a 2.4 mm slice gets the share of the mask it really holds, not one centre sample. With
    ``box`` (atlas voxel bounds [lo, hi)), only native voxels that can see that box are
    resampled; the others get ``outside``. ``intensities=True`` pulls an image instead of a
    mask: one linear sample per voxel, values not clipped.
    """
    shape = tuple(int(n) for n in shape)
    lo, hi = _native_box(box, mask_affine, shape, affine, grid_to_atlas) if box is not None else (np.zeros(3, int), np.array(shape))
    out = np.full(shape, outside, np.float32)
    if np.any(hi <= lo):
        return out
    sub_shape = tuple(int(n) for n in hi - lo)
    sub_affine = affine.copy()
    sub_affine[:3, 3] = (affine @ np.r_[lo, 1.0])[:3]
    values = mask.astype(np.float32, copy=False)
    factor = np.clip(np.ceil(zooms_of(affine) / zooms_of(mask_affine)), 1, 4).astype(int)
    if intensities:
        out[tuple(slice(a, b) for a, b in zip(lo, hi))] = resample(values, mask_affine, sub_shape, sub_affine, grid_to_atlas)
        return out
    if np.all(factor == 1):
        sub = resample(values, mask_affine, sub_shape, sub_affine, grid_to_atlas, cval=outside)
    else:
        fine_shape = tuple(int(n * f) for n, f in zip(sub_shape, factor))
        fine_affine = sub_affine.copy()
        fine_affine[:3, :3] = sub_affine[:3, :3] / factor
        fine_affine[:3, 3] = (sub_affine @ np.r_[-(factor - 1) / (2 * factor), 1.0])[:3]
        fine = resample(values, mask_affine, fine_shape, fine_affine, grid_to_atlas, cval=outside)
        sub = fine.reshape(sub_shape[0], factor[0], sub_shape[1], factor[1], sub_shape[2], factor[2]).mean(axis=(1, 3, 5))
    out[tuple(slice(a, b) for a, b in zip(lo, hi))] = np.clip(sub, 0, 1)
    return out


def _native_box(box, mask_affine, shape, affine, grid_to_atlas) -> tuple[np.ndarray, np.ndarray]:
    """Native voxel bounds [lo, hi) of the native voxels whose centres fall in an atlas voxel box."""
    lo, hi = (np.asarray(b, float) for b in box)
    corners = np.array([[x, y, z, 1.0] for x in (lo[0] - 1, hi[0]) for y in (lo[1] - 1, hi[1]) for z in (lo[2] - 1, hi[2])])
    native = (np.linalg.inv(affine) @ np.linalg.inv(grid_to_atlas) @ mask_affine @ corners.T)[:3].T
    start = np.clip(np.floor(native.min(0)).astype(int) - 2, 0, shape)
    stop = np.clip(np.ceil(native.max(0)).astype(int) + 3, 0, shape)
    return start, stop


def pull_masks(
    atlas: AtlasImages,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    grid_to_atlas: np.ndarray,
    *,
    guard_mm: float,
    with_face: bool,
) -> NativeMasks:
    """Atlas masks on a native grid (``shape``, ``affine``), through ``grid_to_atlas``.

    brain_guard = any atlas brain in the voxel, grown by ``guard_mm`` in native mm. face_roi =
    voxels at least half face. With ``with_face`` (reface, warpface) also brain_neck, the face
    zone and the atlas face intensities; without, those are None (deface needs none of them).
    """
    zooms = zooms_of(affine)

    def pull(role: str, outside: float = 0.0) -> np.ndarray:
        return pull_fraction(getattr(atlas, role), atlas.affine, shape, affine, grid_to_atlas, atlas.boxes[role], outside)

    guard = dilate_mm(pull("brain") > 0.0, zooms, guard_mm)
    face_roi = pull("face_roi") >= FACE_FRACTION
    overlap = face_roi & guard
    face_roi &= ~guard
    brain_neck = zone = face = None
    if with_face:
        brain_neck = (pull("brain_neck", outside=1.0) >= 0.5) | guard
        zone = ((pull("face_zone") >= 0.5) | face_roi) & ~brain_neck
        face = pull_fraction(atlas.closed_face, atlas.affine, shape, affine, grid_to_atlas, atlas.boxes["face"], intensities=True)
    return NativeMasks(
        face_roi=face_roi, brain_guard=guard, brain_neck=brain_neck, face_zone=zone,
        face=face, guard_overlap=int(overlap.sum()), atlas_skin=atlas.skin if with_face else None,
    )


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


def distance_inside_mm(mask: np.ndarray, zooms, cap_mm: float) -> np.ndarray:
    """Distance (mm, capped at ``cap_mm``) from each mask voxel to the nearest voxel outside it."""
    mask = np.asarray(mask, bool)
    out = np.zeros(mask.shape, np.float32)
    if not mask.any():
        return out
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - 1, 0)
    hi = np.minimum(idx.max(0) + 2, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out[box] = np.minimum(ndimage.distance_transform_edt(mask[box], sampling=np.asarray(zooms, float)), cap_mm)
    return out


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


@dataclass(frozen=True)
class FaceWarp:
    """Displacement field (mm, RAS) on a box grid in the T1w's scanner space.

    ``displacement[i, j, k]`` says where the point at voxel (i, j, k) of (``shape``,
    ``affine``) samples the T1w from: warped(p) = T1w(p + d(p)). Zero inside the dilated
    brain_neck and at the box edges; a diffeomorphism (``min_jacobian`` > 0).
    """

    displacement: np.ndarray
    affine: np.ndarray

    @property
    def max_mm(self) -> float:
        return float(np.sqrt((self.displacement ** 2).sum(-1)).max()) if self.displacement.size else 0.0

    @property
    def min_jacobian(self) -> float:
        """Smallest Jacobian determinant of the warp: > 0 means it nowhere folds."""
        return float(jacobian_determinant(self.displacement, self.affine).min()) if self.displacement.size else 1.0


def face_box(zone: np.ndarray, affine: np.ndarray, margin_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """A ``WARP_GRID_MM`` grid (T1w scanner space) on the bounding box of ``zone`` plus margin."""
    idx = np.argwhere(zone)
    if idx.size == 0:
        raise ValueError("the face zone is empty: no face in this field of view")
    pad = np.ceil(margin_mm / zooms_of(affine)).astype(int)
    lo = np.maximum(idx.min(0) - pad, 0)
    hi = np.minimum(idx.max(0) + pad + 1, zone.shape)
    box_affine = affine.copy()
    box_affine[:3, 3] = (affine @ np.r_[lo, 1.0])[:3]
    return coarse_grid(tuple(hi - lo), box_affine, WARP_GRID_MM)


def face_warp(
    t1w: np.ndarray,
    refaced: np.ndarray,
    affine: np.ndarray,
    masks: NativeMasks,
    *,
    dilate_mm_: float,
    seed: int,
    work_dir: str | None = None,
) -> FaceWarp:
    """SyN warp (T1w scanner space) taking the T1w's face toward its refaced version.

    Registered on a 2 mm box around the face zone; the metric sees only voxels outside
    brain_neck grown by ``dilate_mm_`` (mm), and the field is zeroed inside that grown mask
    (fading in over ``WARP_TAPER_MM``) and at the box edges, so the brain cannot move; the
    tapered field is then integrated (:func:`unfolded_flow`) so the warp never folds.
    """
    shape, box_aff = face_box(masks.face_zone, affine, margin_mm=20.0)
    fixed = resample(_smooth_to(refaced, affine), affine, shape, box_aff)
    moving = resample(_smooth_to(t1w, affine), affine, shape, box_aff)
    keep = resample(masks.brain_neck.astype(np.float32), affine, shape, box_aff) > 0.5
    keep = dilate_mm(keep, zooms_of(box_aff), dilate_mm_)
    metric_mask = ~keep
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp, reproducible_ants(seed):
        fit = ants.registration(
            to_ants(fixed, box_aff), to_ants(moving, box_aff), type_of_transform="SyNOnly",
            initial_transform=["Identity"], outprefix=os.path.join(tmp, "face_"),
            mask=to_ants(metric_mask.astype(np.float32), box_aff), syn_metric=WARP_METRIC[0], syn_sampling=WARP_METRIC[1],
            reg_iterations=WARP_ITERATIONS, grad_step=WARP_GRAD_STEP, flow_sigma=WARP_FLOW_SIGMA, total_sigma=0,
        )
        warp_path = next(p for p in fit["fwdtransforms"] if p.endswith("Warp.nii.gz"))
        field = ants.image_read(warp_path).numpy()  # (x, y, z, 3), LPS mm, on the box grid
    # the box grid has the same axes as the ANTs image, so voxel order matches; LPS -> RAS
    field = field.astype(np.float32) * np.array([-1.0, -1.0, 1.0], np.float32)
    zooms = zooms_of(box_aff)
    dist = ndimage.distance_transform_edt(~keep, sampling=zooms)
    edge = _distance_to_edge(shape, zooms)
    weight = np.clip(dist / WARP_TAPER_MM, 0, 1) * np.clip(edge / WARP_TAPER_MM, 0, 1)
    weight[keep] = 0.0
    return FaceWarp(displacement=unfolded_flow(field * weight[..., None], box_aff), affine=box_aff)


def unfolded_flow(velocity: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """:func:`flow` of ``velocity``, checked for folds; smoothed and integrated again while it folds.

    A rough field can still fold once resampled on the grid; it is smoothed by one grid step
    (staying zero where it was zero) up to ``WARP_SMOOTHINGS`` - 1 times, then refused.
    """
    still = ~(velocity != 0).any(-1)
    for _ in range(WARP_SMOOTHINGS):
        displacement = flow(velocity, affine)
        if jacobian_determinant(displacement, affine).min() > 0:
            return displacement
        velocity = np.stack([ndimage.gaussian_filter(velocity[..., c], 1.0) for c in range(3)], -1)
        velocity[still] = 0.0
    raise ValueError(f"the face warp folds even after {WARP_SMOOTHINGS - 1} smoothings")


def flow(velocity: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Displacement (mm, RAS) after following ``velocity`` for unit time (scaling and squaring).

    SyN's field, tapered to zero at the kept mask, folds wherever it shrinks faster than the
    taper allows (on person A: 101 voxels with a negative Jacobian, seen as crumpled brows).
    Read as a stationary velocity and integrated, it is a diffeomorphism in the continuum (on
    the grid a rough field can still fold: :func:`unfolded_flow` checks), and where the
    velocity is zero (the dilated brain_neck) points stay exactly where they are. The field
    is halved until a step moves under half a voxel and stretches or shrinks under half its
    length (so the first step cannot fold), then composed with itself as many times.
    """
    zooms = zooms_of(affine)
    if not velocity.size:
        return velocity.astype(np.float32)
    step_vox = float(np.sqrt((velocity ** 2).sum(-1)).max()) / float(zooms.min())
    stretch = float(np.sqrt((_field_gradient(velocity, zooms) ** 2).sum((-2, -1))).max())
    squarings = max(0, int(np.ceil(np.log2(max(step_vox, stretch, 1e-9) / 0.5))))
    disp = (velocity / 2 ** squarings).astype(np.float32)
    if squarings == 0:
        return disp
    to_vox = np.linalg.inv(affine)
    grid = np.indices(velocity.shape[:3], dtype=np.float32).reshape(3, -1)
    shift = to_vox[:3, :3].astype(np.float32)  # mm -> voxel offsets
    for _ in range(squarings):
        flat = disp.reshape(-1, 3)
        at = grid + shift @ flat.T  # voxel coordinates of x + d(x)
        disp = (flat + np.stack([
            ndimage.map_coordinates(disp[..., c], at, order=1, mode="nearest") for c in range(3)
        ], axis=1)).reshape(disp.shape)
    return disp


def jacobian_determinant(displacement: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """det(d(x + d(x))/dx) on the grid of ``affine``: > 0 everywhere for a warp that does not fold."""
    zooms = zooms_of(affine)
    axes = affine[:3, :3] / zooms  # columns: the grid axes' directions in RAS
    return np.linalg.det(np.eye(3) + _field_gradient(displacement, zooms) @ axes.T)


def _field_gradient(field: np.ndarray, zooms) -> np.ndarray:
    """d field[..., c] / d (grid axis a, mm) as [..., c, a]."""
    return np.stack([np.stack(np.gradient(field[..., c], *zooms), -1) for c in range(3)], -2)


def _smooth_to(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    sigma = np.maximum(0.42 * WARP_GRID_MM / zooms_of(affine), 0)
    return ndimage.gaussian_filter(volume.astype(np.float32), sigma)


def _distance_to_edge(shape, zooms) -> np.ndarray:
    axes = [np.minimum(np.arange(n), n - 1 - np.arange(n)) * z for n, z in zip(shape, zooms)]
    return np.minimum(np.minimum(axes[0][:, None, None], axes[1][None, :, None]), axes[2][None, None, :])


@dataclass(frozen=True)
class WarpSampling:
    """Where each moved voxel of one native grid samples its own image (voxel coordinates)."""

    moved: np.ndarray  # boolean mask of voxels that move, native grid
    coords: np.ndarray  # (3, n) voxel coordinates to sample for those voxels


def warp_sampling(warp: FaceWarp, shape, affine: np.ndarray, image_to_t1w: np.ndarray, min_mm: float = 0.01) -> WarpSampling:
    """The warp expressed on one image's grid: which voxels move and where they sample from.

    For a voxel at native point p: q = image_to_t1w p; it takes the image's value at
    image_to_t1w^-1 (q + d(q)). Voxels whose displacement is under ``min_mm`` keep their value.
    """
    box_shape = warp.displacement.shape[:3]
    reach = resample(np.ones(box_shape, np.float32), warp.affine, shape, affine, image_to_t1w, order=0) > 0
    idx = np.argwhere(reach)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    q = world @ image_to_t1w[:3, :3].T + image_to_t1w[:3, 3]
    box_vox = (q - warp.affine[:3, 3]) @ np.linalg.inv(warp.affine[:3, :3]).T
    disp = np.stack([
        ndimage.map_coordinates(warp.displacement[..., c], box_vox.T, order=1, mode="constant", cval=0.0)
        for c in range(3)
    ], axis=1)
    moving = np.sqrt((disp ** 2).sum(1)) >= min_mm
    t1_to_image = np.linalg.inv(image_to_t1w)
    source = (q[moving] + disp[moving]) @ t1_to_image[:3, :3].T + t1_to_image[:3, 3]
    coords = (source - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    moved = np.zeros(shape, bool)
    moved[tuple(idx[moving].T)] = True
    return WarpSampling(moved=moved, coords=coords.T)


def warpface(volume: np.ndarray, sampling: WarpSampling) -> np.ndarray:
    """Real-valued volume with its face voxels resampled through the face warp (native grid)."""
    out = volume.astype(np.float32, copy=True)
    if sampling.coords.size:
        out[sampling.moved] = ndimage.map_coordinates(
            volume.astype(np.float32), sampling.coords, order=3, mode="nearest", prefilter=True,
        )
    return out
