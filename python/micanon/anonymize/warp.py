"""The face warp as a value: a displacement field on a box in the T1w's scanner space.

Built from SyN's field (:func:`micanon.space.registration.register_face`), tapered to zero at the dilated
brain+neck mask and integrated so it never folds; expressed on any image's grid by
:func:`warp_sampling`. Nothing here reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from micanon.anonymize.masks import NativeMasks
from micanon.render import pick_skin_threshold
from micanon.space.registration import register_face
from micanon.space.grid import coarse_grid, dilate_mm, resample, zooms_of

# Grid of the warpface registration: the face needs no finer detail to stop being the person's.
WARP_GRID_MM = 2.0
# The warp fades from 0 at the dilated brain_neck boundary to full strength over this distance,
# so the face does not tear away from the scalp it joins.
WARP_TAPER_MM = 6.0
# The integrated warp (:func:`flow`) is checked for folds; a field that still folds (a rough SyN
# field, e.g. with a larger step) is smoothed by one grid step and integrated again: this many
# attempts at most before the warp is refused.
WARP_SMOOTHINGS = 5
# The warp is driven by the two skin surfaces, not by the intensities: each image becomes the
# signed distance (mm) to its skin, clipped here, and SyN matches those (mean squares). Shape
# is what identifies a render; intensities inside the face (fat, muscle, the atlas's blurred
# eyes) pulled the old warp toward matching textures and left the person's surface half-moved.
SURFACE_CLIP_MM = 15.0
# ... and a field that folds after those smoothings is halved, at most this many times.
WARP_HALVINGS = 4


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

    @cached_property
    def summary(self) -> dict[str, float]:
        """What the records say of the warp: its reach (mm) and smallest Jacobian determinant."""
        return {"max_mm": round(self.max_mm, 2), "min_jacobian": round(self.min_jacobian, 3)}


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
    skin = pick_skin_threshold(t1w, tuple(float(z) for z in zooms_of(affine)))
    metric = None
    if skin.ok:
        fixed = signed_distance(fixed > skin.value, zooms_of(box_aff), SURFACE_CLIP_MM)
        moving = signed_distance(moving > skin.value, zooms_of(box_aff), SURFACE_CLIP_MM)
        metric = ("meansquares", 0)
    keep = resample(masks.brain_neck.astype(np.float32), affine, shape, box_aff) > 0.5
    keep = dilate_mm(keep, zooms_of(box_aff), dilate_mm_)
    metric_mask = ~keep
    field = register_face(fixed, moving, box_aff, metric_mask=metric_mask, seed=seed, work_dir=work_dir, metric=metric)
    zooms = zooms_of(box_aff)
    dist = ndimage.distance_transform_edt(~keep, sampling=zooms)
    edge = _distance_to_edge(shape, zooms)
    weight = np.clip(dist / WARP_TAPER_MM, 0, 1) * np.clip(edge / WARP_TAPER_MM, 0, 1)
    weight[keep] = 0.0
    return FaceWarp(displacement=unfolded_flow(field * weight[..., None], box_aff), affine=box_aff)


def signed_distance(inside: np.ndarray, zooms, clip_mm: float) -> np.ndarray:
    """Signed distance (mm) to the surface of ``inside``: positive inside, clipped at ``clip_mm``."""
    zooms = np.asarray(zooms, float)
    out = (ndimage.distance_transform_edt(inside, sampling=zooms) - ndimage.distance_transform_edt(~inside, sampling=zooms))
    return np.clip(out, -clip_mm, clip_mm).astype(np.float32)


def unfolded_flow(velocity: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """:func:`flow` of ``velocity``, checked for folds; smoothed and integrated again while it folds.

    A rough field can still fold once resampled on the grid; it is smoothed by one grid step
    (staying zero where it was zero) up to ``WARP_SMOOTHINGS`` - 1 times, then halved up to
    ``WARP_HALVINGS`` times, then refused.
    """
    still = ~(velocity != 0).any(-1)
    for _ in range(WARP_SMOOTHINGS):
        displacement = flow(velocity, affine)
        if jacobian_determinant(displacement, affine).min() > 0:
            return displacement
        velocity = np.stack([ndimage.gaussian_filter(velocity[..., c], 1.0) for c in range(3)], -1)
        velocity[still] = 0.0
    # Still folding: a weaker warp that does not fold beats no output; QC judges what it leaves.
    for _ in range(WARP_HALVINGS):
        velocity = velocity * 0.5
        displacement = flow(velocity, affine)
        if jacobian_determinant(displacement, affine).min() > 0:
            return displacement
    raise ValueError(f"the face warp folds even after {WARP_SMOOTHINGS - 1} smoothings and {WARP_HALVINGS} halvings")


def flow(velocity: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Displacement (mm, RAS) after following ``velocity`` for unit time (scaling and squaring).

    SyN's field, tapered to zero at the kept mask, folds wherever it shrinks faster than the
    taper allows (seen as crumpled brows).
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
    # Only voxels near a node that moves can move: a voxel's displacement is interpolated from
    # the 8 nodes around it, and its nearest node lies within one node of each of them. So the
    # voxels whose nearest node is within one node of a moving node are all there is to look at
    # (a third of the box on a head; the others keep their value anyway).
    moves = ndimage.binary_dilation((warp.displacement != 0).any(-1), structure=np.ones((3, 3, 3), bool))
    reach = resample(moves, warp.affine, shape, affine, image_to_t1w, order=0) > 0
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


