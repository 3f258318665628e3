"""Atlas masks carried to one image's native grid through the fit, and the session's guard.

Every array here lives on the voxel grid of the image being anonymized ("native grid") unless
its name or docstring says otherwise. Atlas-space masks are brought onto that grid by
:func:`pull_masks` through a world-to-world matrix (``grid_to_atlas``: native scanner RAS ->
atlas RAS). Nothing here reads or writes files.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from micanon.render import pick_skin_threshold
from micanon.space.grid import bounding_box, dilate_mm, distance_outside_mm, edt_mm, resample, zooms_of

# Voxels this far (mm) around the atlas face ROI, outside the head, are replaced by reface
# too: the person's nose or chin may stick out beyond the atlas face, into atlas "air".
FACE_ZONE_MM = 20.0
# The atlas face is an average: its eyelids and nostril rims are too thin and blurred to hold a
# skin surface, and pasted as they are they show as empty sockets. Gaps in its skin up to twice
# this size (mm) are closed, and the outer SKIN_SHELL_MM of the closed face are lifted to skin level.
CLOSE_FACE_MM = 10.0
SKIN_SHELL_MM = 5.0
# The average's lips and chin are fainter than its skin (the averaged heads' mouths and chins did
# not line up): at skin level its surface breaks up below the nose, and pasted it shows a rough,
# holed patch over a person's mouth and chin. From LOWER_FACE_FROM_MM under the nose tip (the
# nose itself is left as it was) the skin is looked for on the average blurred by one voxel, at
# a level falling to LOWER_FACE_LEVEL of the skin's over LOWER_FACE_RAMP_MM (a ramp: a step in
# level would show as a line across the cheeks).
LOWER_FACE_FROM_MM = 10.0
LOWER_FACE_LEVEL = 0.5
LOWER_FACE_RAMP_MM = 15.0
# The atlas grid is padded with air below the average's field of view, whose lowest slices fade
# out: the field of view is whole from the lowest slice whose tissue area is at least this
# fraction of the area VIEW_FLOOR_MM higher up.
VIEW_FLOOR_FRACTION = 0.5
VIEW_FLOOR_MM = 10.0
# brain_neck is pulled only this far around the face zone; beyond, everything counts as kept.
BRAIN_NECK_MARGIN_MM = 40.0
# Face-ROI voxels of a thick slice count as face when at least this fraction of the voxel is face.
FACE_FRACTION = 0.5
# reface replaces the head's whole outer shell too, as mri_reface does (the face is not all that
# identifies: ears, the skull's shape and the scalp's do as well): every voxel further than this
# (mm) beyond the brain guard, from the neck up, and the ears.
SHELL_MARGIN_MM = 2.0
# The shell reaches down to the bottom of the atlas brain (the foramen magnum) and fades out over
# this height below it, so the person's own neck joins the atlas's scalp without a step.
SHELL_FADE_MM = 20.0
# The ears ROI (a box around each pinna) is replaced whole and fades out over this distance
# beyond its faces.
EARS_FADE_MM = 20.0
# The atlas's air keeps the average's ringing lines; beyond this distance from its skin (mm) the
# pasted shell is air.
PASTE_AIR_MM = 3.0


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
    ears: np.ndarray | None = None

    @functools.cached_property
    def skin(self) -> float:
        """The template's air/skin level (render.pick_skin_threshold)."""
        return pick_skin_threshold(self.template, tuple(float(z) for z in zooms_of(self.affine))).value

    @functools.cached_property
    def eyes(self):
        """The template's eye globes (atlas RAS), found as in any image (:mod:`micanon.landmarks`)."""
        from micanon.landmarks import find_eyes

        return find_eyes(self.template, self.affine)

    @functools.cached_property
    def closed_face(self) -> np.ndarray:
        """The atlas face with a closed skin surface, so pasted it reads as closed eyes, not sockets."""
        return close_face_skin(self.template, self.face, self.affine, self.skin)

    @functools.cached_property
    def view_floor(self) -> int:
        """The lowest atlas-grid slice (axis 2, inferior -> superior) of the average's whole field
        of view (``VIEW_FLOOR_FRACTION``): below it the atlas knows nothing, its air is padding."""
        area = (self.template > self.skin).sum((0, 1))
        step = max(1, int(round(VIEW_FLOOR_MM / float(zooms_of(self.affine)[2]))))
        for k in np.flatnonzero(area):
            if area[k] >= VIEW_FLOOR_FRACTION * area[min(k + step, len(area) - 1)]:
                return int(k)
        return 0

    @functools.cached_property
    def brain_floor_z(self) -> float:
        """Atlas RAS z (mm) of the atlas brain's lowest voxel: where reface's shell starts to fade."""
        idx = np.argwhere(self.brain)
        if idx.size == 0:
            return float("-inf")
        return float((self.affine[2, :3] @ idx.T).min() + self.affine[2, 3])

    @functools.cached_property
    def paste(self) -> np.ndarray:
        """What reface pastes (atlas grid): the template with the closed face, air beyond its skin.

        The template's tissue (opened once to drop the average's ringing in the air; its largest
        blob) grown by ``PASTE_AIR_MM``; the closed face (:attr:`closed_face`) where the face is.
        """
        # on a 2x coarser copy (the mask needs no finer detail: it is grown by PASTE_AIR_MM)
        coarse = self.template[::2, ::2, ::2]
        tissue = ndimage.binary_opening(coarse > self.skin)
        labels, count = ndimage.label(tissue)
        if count:
            tissue = labels == 1 + int(np.argmax(ndimage.sum(tissue, labels, range(1, count + 1))))
        near = dilate_mm(tissue, 2 * zooms_of(self.affine), PASTE_AIR_MM + 2 * float(zooms_of(self.affine).max()))
        near = np.repeat(np.repeat(np.repeat(near, 2, 0), 2, 1), 2, 2)[tuple(slice(0, n) for n in self.template.shape)]
        out = np.where(near, self.template, 0).astype(np.float32)
        face = self.face > 0
        out[face] = self.closed_face[face]
        return out


def atlas_images(template, face_roi, brain, brain_neck, face, affine, ears=None) -> AtlasImages:
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
    ears = None if ears is None else np.asarray(ears) > 0
    boxes = {name: bounding_box(mask) for name, mask in
             (("brain", brain), ("face_roi", face_roi), ("face_zone", face_zone), ("face", face > 0))}
    if ears is not None and ears.any():
        boxes["ears"] = bounding_box(ears)
    # brain_neck only matters near the face: elsewhere everything is kept anyway
    margin = np.ceil(BRAIN_NECK_MARGIN_MM / zooms).astype(int)
    lo, hi = boxes["face_zone"]
    boxes["brain_neck"] = (np.maximum(lo - margin, 0), np.minimum(hi + margin, face_roi.shape))
    return AtlasImages(
        template=template, face_roi=face_roi, brain=brain,
        brain_neck=brain_neck, face=face, face_zone=face_zone,
        head=head, affine=np.asarray(affine, float), boxes=boxes, ears=ears,
    )


def close_face_skin(template: np.ndarray, face: np.ndarray, affine, skin: float) -> np.ndarray:
    """The atlas face (atlas grid, ``affine``: voxel -> atlas RAS) with a closed skin: gaps shut,
    the outer shell at skin level.

    The template's skin (above ``skin``, or from the nose tip down above the lower level of
    :func:`skin_levels`, opened once to drop the average's ringing lines in the air) is closed
    by ``CLOSE_FACE_MM``; face voxels within ``SKIN_SHELL_MM`` under that closed surface and
    darker than the template's median skin are raised to it. Deeper voxels (the eyeballs behind
    the lids, the sinuses) keep their values. Only the face's bounding box plus a margin is
    processed.
    """
    out = face.copy()
    if not (face > 0).any():
        return out
    affine = np.asarray(affine, float)
    zooms = zooms_of(affine)
    lo, hi = bounding_box(face > 0)
    pad = np.ceil((CLOSE_FACE_MM + 2) / zooms).astype(int)
    lo, hi = np.maximum(lo - pad, 0), np.minimum(hi + pad, face.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    sub_template = template[box]
    box_affine = affine.copy()
    box_affine[:3, 3] = (affine @ np.r_[lo, 1.0])[:3]
    levels = skin_levels(sub_template, face[box] > 0, box_affine, skin)
    tissue = sub_template > skin
    lowered = levels < skin
    if lowered.any():
        tissue |= lowered & (ndimage.gaussian_filter(sub_template, 1.0) > levels)
    tissue = ndimage.binary_opening(tissue)
    far_outside = ~dilate_mm(tissue, zooms, CLOSE_FACE_MM)
    # >= (not >): a voxel exactly CLOSE_FACE_MM from the far air is on the closed surface
    closed = (edt_mm(~far_outside, zooms) >= CLOSE_FACE_MM) | tissue
    depth = edt_mm(closed, zooms)
    shell = closed & (depth <= SKIN_SHELL_MM)
    level = float(np.median(sub_template[(sub_template > skin) & shell]))
    sub = out[box]
    lift = shell & (sub > 0) & (sub < level)
    sub[lift] = level
    return out


def skin_levels(template: np.ndarray, face: np.ndarray, affine: np.ndarray, skin: float) -> np.ndarray:
    """The level the skin is looked for at in each voxel of ``template`` (``affine``: its voxel ->
    atlas RAS): ``skin`` down to ``LOWER_FACE_FROM_MM`` under the nose tip (the face's most
    anterior voxel above ``skin``), falling linearly to ``LOWER_FACE_LEVEL * skin`` over
    ``LOWER_FACE_RAMP_MM`` below that."""
    levels = np.full(template.shape, skin, np.float32)
    front = np.argwhere(face & (template > skin))
    if front.size == 0:
        return levels
    world = front @ affine[:3, :3].T + affine[:3, 3]
    tip_z = world[np.argmax(world[:, 1]), 2]
    z = affine[2, 3] + sum(affine[2, a] * np.arange(n).reshape([-1 if b == a else 1 for b in range(3)])
                           for a, n in enumerate(template.shape))
    below = np.clip((tip_z - LOWER_FACE_FROM_MM - z) / LOWER_FACE_RAMP_MM, 0.0, 1.0)
    levels *= 1.0 - (1.0 - LOWER_FACE_LEVEL) * np.broadcast_to(below, template.shape)
    return levels


@dataclass(frozen=True)
class NativeMasks:
    """Atlas masks on one image's native grid (boolean), with the atlas face intensities.

    ``face_roi`` never overlaps ``brain_guard``: where they met, the guard won and
    ``guard_overlap`` counts the voxels taken back from the face ROI.
    ``face_roi_in_native_brain`` counts the face-ROI voxels the fit put inside the subject's own
    brain (before the guard took them back): a fit that does so is wrong.
    ``ears``: the atlas ears ROI less the guard (None when not asked for). ``shell_zone`` and
    ``shell_weight``: the head's outer shell reface replaces besides the face (more than
    ``SHELL_MARGIN_MM`` beyond the guard, from the neck up, and the ears) and how much of the
    atlas each of its voxels may take; ``paste``: the atlas intensities reface pastes (the
    template with its closed face). ``atlas_head``: that paste over the whole grid
    (:func:`atlas_head_on_grid`), the atlas person in this image's camera for QC's identity check.
    """

    face_roi: np.ndarray
    brain_guard: np.ndarray
    brain_neck: np.ndarray | None
    face_zone: np.ndarray | None
    face: np.ndarray | None
    guard_overlap: int
    atlas_skin: float | None = None
    face_roi_in_native_brain: int = 0
    ears: np.ndarray | None = None
    shell_zone: np.ndarray | None = None
    shell_weight: np.ndarray | None = None
    paste: np.ndarray | None = None
    atlas_head: np.ndarray | None = None


def within_atlas_view(atlas: AtlasImages, where: np.ndarray, affine: np.ndarray, grid_to_atlas: np.ndarray) -> np.ndarray:
    """``where`` (native bool) less the voxels that map below the atlas's field of view
    (:attr:`AtlasImages.view_floor`): there the atlas has padding, not a head."""
    out = np.zeros(where.shape, bool)
    lo, hi = bounding_box(where)
    if not (hi > lo).all():
        return out
    # the atlas slice index of every voxel of the box (linear in the voxel indices), as _shell_fade
    row = (np.linalg.inv(atlas.affine) @ grid_to_atlas @ affine)[2]
    i, j, k = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out[box] = where[box] & ((row[0] * i + row[1] * j) + (row[2] * k + row[3]) >= atlas.view_floor - 0.5)
    return out


def atlas_head_on_grid(atlas: AtlasImages, shape, affine: np.ndarray, grid_to_atlas: np.ndarray) -> np.ndarray:
    """The whole atlas head on a native grid (float32, atlas intensities, 0 beyond the atlas).

    What reface pastes (:attr:`AtlasImages.paste`: the template with its closed face, air beyond
    its skin) carried through the same affine fit as every atlas mask, over the whole grid: the
    atlas person placed, sized and cut by the field of view as the image's own head is. Rendered
    with the image's head affine it is the face reface aims at, seen by the image's camera
    (QC's "nearer the atlas than the person"). Not intensity-matched: a render only sees the
    surface at the volume's own skin level.
    """
    return pull_fraction(atlas.paste, atlas.affine, shape, affine, grid_to_atlas, intensities=True)


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
    values = mask if mask.dtype == bool else mask.astype(np.float32, copy=False)  # resample reads a bool mask as it is
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


def _shell_fade(floor_z: float, shape, voxel_to_atlas: np.ndarray) -> np.ndarray:
    """Reface's shell weight on a native grid (float32): 1 from the atlas brain's floor up, fading
    to 0 over ``SHELL_FADE_MM`` below it (atlas RAS z is linear in the native voxel indices)."""
    i, j, k = np.ogrid[tuple(slice(0, n) for n in shape)]
    row = voxel_to_atlas[2]
    z = (row[0] * i + row[1] * j).astype(np.float32) + (row[2] * k + row[3]).astype(np.float32)
    return np.clip((z - (floor_z - SHELL_FADE_MM)) / SHELL_FADE_MM, 0, 1).astype(np.float32)


def sample_at(data: np.ndarray, data_affine: np.ndarray, voxels: np.ndarray, voxel_to_data_world: np.ndarray) -> np.ndarray:
    """Linear samples of ``data`` (grid ``data_affine``) at native voxel indices ``voxels`` (N x 3),
    through ``voxel_to_data_world`` (native voxel -> data world); 0 outside ``data``'s grid."""
    if voxels.size == 0:
        return np.zeros(0, np.float32)
    to_data = np.linalg.inv(data_affine) @ voxel_to_data_world
    coords = to_data[:3, :3] @ voxels.T.astype(np.float64) + to_data[:3, 3:4]
    return ndimage.map_coordinates(np.asarray(data, np.float32), coords, order=1, mode="constant", cval=0.0, prefilter=False)


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
    native_brain: np.ndarray | None = None,
    with_ears: bool = False,
    with_shell: bool = False,
) -> NativeMasks:
    """Atlas masks on a native grid (``shape``, ``affine``), through ``grid_to_atlas``.

    brain_guard = any atlas brain in the voxel, united with ``native_brain`` (the subject's own
    brain on this grid, found without the atlas fit), grown by ``guard_mm`` in native mm.
    face_roi = voxels at least half face, less the guard. With ``with_face`` (reface,
    warpface) also brain_neck, the face zone (within the atlas's field of view,
    :func:`within_atlas_view`), the head shell and the atlas intensities; without,
    those are None (deface needs none of them); so is ``atlas_head`` (:func:`atlas_head_on_grid`). ``with_ears``: the ears ROI less the guard.
    ``with_shell`` (reface; needs ``with_face``): the head shell, its weights and the atlas intensities to paste.
    """
    zooms = zooms_of(affine)

    def pull(role: str, outside: float = 0.0) -> np.ndarray:
        return pull_fraction(getattr(atlas, role), atlas.affine, shape, affine, grid_to_atlas, atlas.boxes[role], outside)

    brain = pull("brain") > 0.0
    face_roi = pull("face_roi") >= FACE_FRACTION
    in_native_brain = 0
    if native_brain is not None:
        in_native_brain = int((face_roi & native_brain).sum())
        brain |= native_brain
    guard = dilate_mm(brain, zooms, guard_mm)
    overlap = face_roi & guard
    face_roi &= ~guard
    ears = None
    if with_ears and atlas.ears is not None and "ears" in atlas.boxes:
        ears = (pull("ears") >= FACE_FRACTION) & ~guard
    brain_neck = zone = face = shell_zone = shell_weight = paste = atlas_head = None
    if with_face:
        brain_neck = (pull("brain_neck", outside=1.0) >= 0.5) | guard
        # Below the average's field of view the atlas grid is padded with air, not a face: what
        # reface pastes and the warp aims at stop there (pasted, that air cut a gash under B's lips).
        zone = within_atlas_view(atlas, ((pull("face_zone") >= 0.5) | face_roi) & ~brain_neck, affine, grid_to_atlas)
        face = pull_fraction(atlas.closed_face, atlas.affine, shape, affine, grid_to_atlas, atlas.boxes["face"], intensities=True)
        atlas_head = atlas_head_on_grid(atlas, shape, affine, grid_to_atlas)
    if with_shell and with_face:
        shell_weight = _shell_fade(atlas.brain_floor_z, shape, grid_to_atlas @ affine)
        if atlas.ears is not None and "ears" in atlas.boxes:
            # the ears ROI is a box reaching below the shell's fade: whole inside it (a long ear lobe
            # left half-blended shows as a ridge under the ear) and fading out beyond its faces, so
            # its floor does not cut a step into the neck
            ears_box = pull("ears") >= FACE_FRACTION
            fade = 1.0 - distance_outside_mm(ears_box, zooms, EARS_FADE_MM) / EARS_FADE_MM
            np.maximum(shell_weight, fade, out=shell_weight)
        shell_zone = (shell_weight > 0) & ~dilate_mm(guard, zooms, SHELL_MARGIN_MM) & ~zone
        shell_zone = within_atlas_view(atlas, shell_zone, affine, grid_to_atlas)
        paste = np.zeros(shape, np.float32)
        replaced = shell_zone | zone
        paste[replaced] = sample_at(atlas.paste, atlas.affine, np.argwhere(replaced), grid_to_atlas @ affine)
    return NativeMasks(
        face_roi=face_roi, brain_guard=guard, brain_neck=brain_neck, face_zone=zone,
        face=face, guard_overlap=int(overlap.sum()), atlas_skin=atlas.skin if with_face else None,
        face_roi_in_native_brain=in_native_brain, ears=ears, shell_zone=shell_zone,
        shell_weight=shell_weight, paste=paste, atlas_head=atlas_head,
    )
