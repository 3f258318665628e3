"""Facial landmarks found in an MRI volume itself: eye globes, nose tip, upper lip, chin.

No atlas and no registration: the landmarks come from the image's own intensities and head
shape, so they can check (or seed) a registration instead of depending on one.

Spaces. Every public function takes ``volume`` as a 3D array indexed by voxel (i, j, k) and
``affine`` as the 4x4 matrix mapping voxel indices to world millimetres (the nibabel affine,
RAS+ by convention). Every point it returns is in that same world space, in mm.

The header's axis labels are NOT trusted: a header can be rotated, oblique or mislabelled, so
"anterior" and "superior" are worked out from the anatomy (the eye pair, the head mask's
symmetry, where the brain and the skin are). Only when two candidate eye pairs are otherwise
nearly tied does the header's own "anterior" break the tie (``HEADER_PRIOR_WEIGHT``).

Why these cues:
- the vitreous is a fluid sphere about 22-25 mm across, of one intensity, dark in T1w and
  FLAIR, bright in T2w, wrapped in orbital fat (bright in T1w); a scale-normalised Laplacian of
  Gaussian peaks at the centre of such a sphere at sigma = r / sqrt(3), whatever the polarity;
- the two globes are a mirror pair: about 50-75 mm apart, the same size and contrast, the same
  depth under the skin, their bisecting plane being the head's plane of symmetry;
- the maxillary sinuses and the nasal cavity are the usual look-alikes (dark, paired, near the
  face); they are air (as dark as the background outside the head in every contrast) and sit
  farther from the brain than the eyes do, which the pair score uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from micanon.space.similarity import otsu_threshold

# Working grid: a 24 mm globe is 8 voxels across at 3 mm, plenty for blob detection, and a
# whole head stays well under 1 s. (A finer grid resolves small air cells such as the frontal
# sinus into globe-like blobs without helping the globes themselves.)
WORK_MM = 3.0
# Vitreous radii searched (mm). Adult globes are ~11-12.5 mm in radius; the range is widened for
# children, partial-volume and the LoG's own bias on a thick-slice grid.
EYE_RADII_MM = (9.0, 11.0, 13.0)
# Centre-to-centre distance of the two globes (adult interpupillary distance ~ 54-72 mm).
EYE_PAIR_MM = (48.0, 78.0)
# Depth of a globe's centre under the skin: its radius plus the lids in front of the cornea.
# Deeper blobs in the orbit are the fat cone behind the globe (bright in T1w and PDw).
EYE_DEPTH_MM = (6.0, 28.0)
EYE_DEPTH_TYPICAL_MM = 16.0
# Radius of the globe's edge measured on the radial intensity profile (accepted range).
EYE_EDGE_RADIUS_MM = (7.5, 16.0)
# Weight of the header's "+y is anterior" belief in the pair score: a tie-breaker only, far
# smaller than any anatomical term, so a rotated or relabelled header cannot decide.
HEADER_PRIOR_WEIGHT = 0.02
# Below this score no pair is convincing and find_eyes returns None.
MIN_EYE_SCORE = 0.5
# Evidence that other checks lean on (the fit check's eye witness, the deface check) takes only
# pairs at least this convincing: real globes of T1w and T2w heads score 0.85-0.95, while a pair
# of round dark patches in a slab without orbits reached 0.72.
TRUSTED_EYE_SCORE = 0.8


@dataclass(frozen=True)
class Eyes:
    """The two eye globes, in world mm (the input affine's space).

    ``centres[0]`` is the globe with the smaller world x; nothing here says which is anatomically
    left, since the header may be mislabelled. ``polarity`` is "dark" when the vitreous is darker
    than its surroundings (T1w, FLAIR) and "bright" otherwise (T2w). ``score`` in [0, 1] is the
    pair's fit to the expected geometry and symmetry; ``forward`` / ``up`` are unit vectors (world)
    pointing out of the face and toward the top of the head, derived from the anatomy.
    """

    centres: np.ndarray
    radii_mm: np.ndarray
    score: float
    polarity: str
    contrast: np.ndarray
    distance_mm: float
    depth_mm: np.ndarray
    symmetry: float
    forward: np.ndarray
    up: np.ndarray
    details: dict = field(default_factory=dict, compare=False)

    @property
    def midpoint(self) -> np.ndarray:
        """Midpoint of the two centres (world mm)."""
        return self.centres.mean(axis=0)

    @property
    def axis(self) -> np.ndarray:
        """Unit vector (world) from ``centres[0]`` to ``centres[1]``."""
        v = self.centres[1] - self.centres[0]
        return v / np.linalg.norm(v)


@dataclass(frozen=True)
class FacePoints:
    """Skin landmarks on the face's midline, world mm; None where the field of view lacks them."""

    nose_tip: np.ndarray | None
    upper_lip: np.ndarray | None
    chin: np.ndarray | None


# ----------------------------------------------------------------------------- working grid


@dataclass
class _Work:
    """The volume on an isotropic working grid aligned with its voxel axes, plus head masks."""

    image: np.ndarray  # float32, intensities of the volume
    affine: np.ndarray  # working voxel -> world mm
    head: np.ndarray  # bool, filled head mask
    depth: np.ndarray  # float32, mm from the skin (0 outside the head)
    air: float  # median intensity outside the head
    tissue: float  # robust bright level of the head
    border: np.ndarray  # bool, voxels on the edge of the field of view


_CACHE: dict = {}


def _as_volume(volume) -> np.ndarray:
    data = np.asarray(volume, dtype=np.float32)
    while data.ndim > 3:  # a 4D series: landmarks of its first volume
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"need a 3D volume, got shape {np.shape(volume)}")
    return np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """3D fill, then 2D fills along each axis: cavities open at a cut field of view get filled too."""
    out = ndi.binary_fill_holes(mask)
    for axis in range(3):
        moved = np.moveaxis(out, axis, 0)
        filled = np.stack([ndi.binary_fill_holes(s) for s in moved])
        out = np.moveaxis(filled, 0, axis)
    return out


def _work(volume, affine) -> _Work:
    data = _as_volume(volume)
    affine = np.asarray(affine, dtype=float)
    key = (id(volume), data.shape, affine.tobytes(), float(data.sum()))
    if key in _CACHE:
        return _CACHE[key]
    vox = np.linalg.norm(affine[:3, :3], axis=0)
    zoom = vox / WORK_MM
    # Anti-alias before shrinking a fine grid; a thick-slice axis is only interpolated.
    pre = np.maximum((1.0 / zoom - 1.0) * 0.5, 0.0)
    smooth = ndi.gaussian_filter(data, pre) if np.any(pre > 0) else data
    image = ndi.zoom(smooth, zoom, order=1, grid_mode=False).astype(np.float32)
    step = (np.array(data.shape) - 1) / np.maximum(np.array(image.shape) - 1, 1)
    waffine = affine @ np.diag([*step, 1.0])

    nonzero = image[image > np.percentile(image, 1)]
    thr = otsu_threshold(nonzero, clip_percentile=99.5)[0]
    # A head has no hard-edged holes: smooth a little so noisy skin stays one surface.
    mask = ndi.gaussian_filter(image, 1.0) > thr * 0.6
    mask = ndi.binary_opening(mask, iterations=1)
    labels, n = ndi.label(mask)
    if n:
        sizes = ndi.sum_labels(mask, labels, np.arange(1, n + 1))
        mask = labels == (np.argmax(sizes) + 1)
    mask = ndi.binary_closing(np.pad(mask, 3), iterations=3)[3:-3, 3:-3, 3:-3]
    head = _fill_holes(mask)
    # The edge of the field of view counts as surface: a globe cut by it is as unusable as one at the skin.
    depth = ndi.distance_transform_edt(np.pad(head, 1), sampling=WORK_MM)[1:-1, 1:-1, 1:-1]
    border = np.zeros(head.shape, bool)
    border[[0, -1], :, :] = border[:, [0, -1], :] = border[:, :, [0, -1]] = True
    outside = image[~ndi.binary_dilation(head, iterations=2)]
    air = float(np.median(outside)) if outside.size else 0.0
    tissue = float(np.percentile(image[head], 90)) if head.any() else 1.0
    w = _Work(image, waffine, head, depth.astype(np.float32), air, tissue, border)
    _CACHE.clear()
    _CACHE[key] = w
    return w


def _to_world(aff: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return np.asarray(ijk, float) @ aff[:3, :3].T + aff[:3, 3]


def _to_voxel(aff: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(aff)
    return np.asarray(xyz, float) @ inv[:3, :3].T + inv[:3, 3]


def _sample(arr: np.ndarray, aff: np.ndarray, xyz: np.ndarray, order: int = 1, cval=0.0) -> np.ndarray:
    ijk = _to_voxel(aff, xyz)
    return ndi.map_coordinates(arr, ijk.reshape(-1, 3).T, order=order, cval=cval, mode="constant").reshape(
        np.shape(xyz)[:-1])


# ----------------------------------------------------------------------------- eye candidates


@dataclass
class _Blob:
    ijk: np.ndarray  # working voxel (float)
    xyz: np.ndarray  # world mm
    radius: float
    response: float  # normalised LoG, > 0, in units of (tissue - air)
    polarity: str
    depth: float
    core: float  # mean intensity inside, as a fraction from air (0) to tissue (1)
    roundness: float  # 0..1: how well a sphere of the found radius explains the blob


def _blobs(w: _Work, max_per_polarity: int = 25) -> list[_Blob]:
    span = max(w.tissue - w.air, 1e-6)
    norm = (w.image - w.air) / span
    responses = []
    for r in EYE_RADII_MM:
        sigma = r / np.sqrt(3.0) / WORK_MM
        responses.append(sigma**2 * ndi.gaussian_laplace(norm, sigma))
    stack = np.stack(responses)  # positive at dark blob centres
    out: list[_Blob] = []
    usable = w.head & (w.depth >= EYE_DEPTH_MM[0]) & (w.depth <= EYE_DEPTH_MM[1])
    for sign, polarity in ((1.0, "dark"), (-1.0, "bright")):
        s = sign * stack
        best = s.max(axis=0)
        scale = s.argmax(axis=0)
        peaks = (best == ndi.maximum_filter(best, size=5)) & usable & (best > 0.05)
        idx = np.argwhere(peaks)
        if not len(idx):
            continue
        vals = best[peaks]
        order = np.argsort(vals)[::-1][:max_per_polarity]
        for n in order:
            i, j, k = idx[n]
            # Sub-voxel centre: response-weighted centroid of the 3x3x3 neighbourhood.
            sl = tuple(slice(max(c - 1, 0), c + 2) for c in (i, j, k))
            patch = np.clip(best[sl], 0, None)
            grid = np.stack(np.meshgrid(*[np.arange(x.start, x.start + n_) for x, n_ in zip(sl, patch.shape)],
                                        indexing="ij"), -1)
            ijk = (grid * patch[..., None]).reshape(-1, 3).sum(0) / max(patch.sum(), 1e-9)
            radius = EYE_RADII_MM[int(scale[i, j, k])]
            out.append(_Blob(ijk, _to_world(w.affine, ijk), radius, float(vals[n]), polarity,
                             float(w.depth[i, j, k]), 0.0, 0.0))
    for b in out:
        _describe(w, b, norm)
    return out


_DIRS = None


def _directions(n: int = 64) -> np.ndarray:
    global _DIRS
    if _DIRS is None or len(_DIRS) != n:
        k = np.arange(n) + 0.5
        phi = np.arccos(1 - 2 * k / n)
        theta = np.pi * (1 + 5**0.5) * k
        _DIRS = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], -1)
    return _DIRS


def _describe(w: _Work, b: _Blob, norm: np.ndarray) -> None:
    """Radius from the radial profile, core level and roundness of a blob (in place)."""
    dirs = _directions()
    radii = np.arange(0.0, 22.0, 1.0)
    # Directions in voxel-grid mm (the working grid is isotropic): world rotation is irrelevant.
    pts = b.ijk[None, None, :] + radii[None, :, None] * dirs[:, None, :] / WORK_MM
    prof = ndi.map_coordinates(norm, pts.reshape(-1, 3).T, order=1, mode="nearest").reshape(len(dirs), len(radii))
    sign = 1.0 if b.polarity == "dark" else -1.0
    grad = sign * np.diff(prof, axis=1)  # rising (for dark blobs) leaving the blob
    # Edge radius per direction: strongest step between 5 and 20 mm.
    lo, hi = 5, 20
    edge = lo + np.argmax(grad[:, lo:hi], axis=1) + 0.5
    r = float(np.median(edge))
    spread = float(np.median(np.abs(edge - r)))
    b.radius = r
    b.core = float(np.mean(prof[:, :4]))
    # A sphere has the same edge radius every way and a clear step there.
    step = np.take_along_axis(grad, (edge - 0.5).astype(int)[:, None], axis=1)[:, 0]
    good_step = float(np.mean(step > 0.05))
    b.roundness = float(np.clip(1.0 - spread / 5.0, 0, 1) * good_step)


# ----------------------------------------------------------------------------- pair choice


def _symmetry(w: _Work, mid_ijk: np.ndarray, normal: np.ndarray, pts: np.ndarray) -> float:
    """Agreement of the head mask and image with their mirror image in a plane (0..1)."""
    d = (pts - mid_ijk) @ normal
    mirrored = pts - 2 * d[:, None] * normal[None, :]
    a = ndi.map_coordinates(w.image, pts.T, order=1, mode="constant")
    b = ndi.map_coordinates(w.image, mirrored.T, order=1, mode="constant")
    if a.std() < 1e-6 or b.std() < 1e-6:
        return 0.0
    return float(max(np.corrcoef(a, b)[0, 1], 0.0))


def _head_centre(w: _Work) -> np.ndarray:
    """Deepest point of the head (working voxel): inside the cranium, whatever the field of view."""
    smooth = ndi.gaussian_filter(w.depth, 2.0)
    return np.array(np.unravel_index(np.argmax(smooth), smooth.shape), float)


def _score_pair(w: _Work, a: _Blob, b: _Blob, sym_pts: np.ndarray, centre: np.ndarray) -> tuple[float, dict] | None:
    d = float(np.linalg.norm(a.xyz - b.xyz))
    if not EYE_PAIR_MM[0] <= d <= EYE_PAIR_MM[1]:
        return None
    # The edge found by the radial profile must be globe-sized: a small or huge dark region
    # (a vessel, a sinus, the nasal cavity) that happens to excite the filter is not a globe.
    if not all(EYE_EDGE_RADIUS_MM[0] <= x.radius <= EYE_EDGE_RADIUS_MM[1] for x in (a, b)):
        return None
    f = {}
    f["distance"] = float(np.exp(-0.5 * ((d - 60.0) / 10.0) ** 2))
    f["radius"] = float(np.exp(-abs(a.radius - b.radius) / 3.0))
    f["contrast"] = min(a.response, b.response) / max(a.response, b.response)
    f["depth"] = float(np.exp(-abs(a.depth - b.depth) / 8.0))
    # A globe's centre is its radius plus the lids under the skin in front of the cornea: deeper
    # blobs in the orbit are the fat cone behind the globe or the brain beyond it.
    f["shallow"] = float(np.exp(-0.5 * ((max(a.depth, b.depth) - EYE_DEPTH_TYPICAL_MM) / 7.0) ** 2))
    f["round"] = float(np.sqrt(a.roundness * b.roundness))
    # Vitreous is fluid, not air: its level sits above the air outside the head (T1w, T2w).
    core = min(a.core, b.core)
    f["not_air"] = float(np.clip(core / 0.05, 0, 1)) if a.polarity == "dark" else 1.0
    f["size"] = float(np.exp(-0.5 * ((0.5 * (a.radius + b.radius) - 11.5) / 3.0) ** 2))
    mid = 0.5 * (a.ijk + b.ijk)
    axis = b.ijk - a.ijk
    axis /= np.linalg.norm(axis)
    # Symmetry of the face and the front of the head around the pair (a whole-head test would
    # be swamped by a long, possibly tilted, neck).
    local = sym_pts[np.linalg.norm(sym_pts - mid, axis=1) * WORK_MM < 90.0]
    f["symmetry"] = _symmetry(w, mid, axis, local) if len(local) > 200 else 0.0
    # The plane bisecting the globes is the head's plane of symmetry, so the cranium's deep
    # centre lies in it.
    off = (centre - mid) * WORK_MM
    f["centre_in_plane"] = float(np.exp(-abs(off @ axis) / 12.0))
    keys = ("distance", "radius", "contrast", "depth", "shallow", "round", "not_air", "size", "centre_in_plane")
    weights = np.array([1.0, 1.0, 1.0, 1.0, 1.5, 1.5, 0.5, 1.0, 1.5])
    vals = np.array([max(f[k], 1e-3) for k in keys])
    score = float(np.exp(np.sum(weights * np.log(vals)) / weights.sum()))
    # Mirror symmetry is what separates a real pair from two look-alike blobs, so it gates the
    # score: an asymmetric pair cannot win on good looks.
    score *= float(np.clip((f["symmetry"] - 0.2) / 0.4, 0, 1))
    return score, f


def _forward_up(w: _Work, mid: np.ndarray, axis: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward (out of the face) and up (toward the vertex) unit vectors in working voxel axes.

    In the plane bisecting the eyes, the skin is nearest to the eyes' midpoint in front (nasal
    bridge, brow); the cranium's deep centre lies back and up. Rays are cast from the midpoint
    in that plane; the shortest way out of the head on the side away from the centre, averaged
    with the direction from the centre through the midpoint, is "forward".
    """
    back = centre - mid
    back -= (back @ axis) * axis
    back /= np.linalg.norm(back)
    e2 = np.cross(axis, back)
    angles = np.deg2rad(np.arange(0, 360, 3))
    dirs = np.cos(angles)[:, None] * back + np.sin(angles)[:, None] * e2
    steps = np.arange(0, 160, 1.0) / WORK_MM
    pts = mid + steps[None, :, None] * dirs[:, None, :]
    inside = ndi.map_coordinates(w.head.astype(np.float32), pts.reshape(-1, 3).T, order=0,
                                 mode="constant").reshape(len(dirs), len(steps)) > 0.5
    exit_step = np.argmin(inside, axis=1)
    exit_mm = exit_step.astype(float)
    exit_mm[inside.all(axis=1)] = 160.0
    # A ray leaving through the edge of the field of view met a cut, not the face.
    last_in = pts[np.arange(len(dirs)), np.maximum(exit_step - 1, 0)]
    at_edge = np.any((last_in < 1.5) | (last_in > np.array(w.head.shape) - 2.5), axis=1)
    exit_mm[at_edge] = 160.0
    exit_mm = ndi.median_filter(exit_mm, size=5, mode="wrap")
    front_side = (dirs @ back) < -0.2
    exit_mm[~front_side] = np.inf
    # Average the directions within a few mm of the nearest exit: one ray is noisy.
    near = exit_mm <= exit_mm.min() + 3.0
    skin = dirs[near].sum(0)
    skin /= np.linalg.norm(skin)
    # The nearest skin alone can be the brow (forward and up); the ray from the cranium's centre
    # through the eyes points forward and down. Their mean is close to the face's own normal.
    fwd = skin - back
    fwd -= (fwd @ axis) * axis
    fwd /= np.linalg.norm(fwd)
    up = np.cross(fwd, axis)
    if up @ back < 0:
        up = -up
    return fwd, up


def _dir_to_world(aff: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = aff[:3, :3] @ v
    return out / np.linalg.norm(out)


def _rank_pairs(w: _Work):
    """All plausible eye pairs, best first: (blobs, head centre, [(score, i, j, features)])."""
    blobs = _blobs(w)
    centre = _head_centre(w)
    head_idx = np.argwhere(w.head)
    rng = np.random.default_rng(0)
    sym_pts = head_idx[rng.choice(len(head_idx), size=min(8000, len(head_idx)), replace=False)].astype(float)
    header_fwd = np.array([0.0, 1.0, 0.0])
    ranked = []
    for i in range(len(blobs)):
        for j in range(i + 1, len(blobs)):
            a, b = blobs[i], blobs[j]
            if a.polarity != b.polarity:
                continue
            res = _score_pair(w, a, b, sym_pts, centre)
            if res is None:
                continue
            score, feats = res
            # Tie-breaker only: the header's +y ("anterior") should point from centre to pair.
            mid_w = 0.5 * (a.xyz + b.xyz)
            v = mid_w - _to_world(w.affine, centre)
            score += HEADER_PRIOR_WEIGHT * float(v @ header_fwd / max(np.linalg.norm(v), 1e-6))
            ranked.append((score, i, j, feats))
    ranked.sort(key=lambda t: -t[0])
    return blobs, centre, ranked


def find_eyes(volume, affine) -> Eyes | None:
    """Find the two eye globes in ``volume`` without any atlas.

    ``volume``: 3D array in voxel space; ``affine``: 4x4 voxel -> world mm (nibabel affine).
    Returns an :class:`Eyes` whose points and vectors are in that world space (mm), or None when
    no pair of blobs fits two eyes convincingly (e.g. the orbits are outside the field of view).
    The header's orientation labels are not used except as a weak tie-breaker.
    """
    w = _work(volume, affine)
    if w.head.sum() < 1000:
        return None
    blobs, centre, ranked = _rank_pairs(w)
    if not ranked:
        return None
    score, i, j, feats = ranked[0]
    if score < MIN_EYE_SCORE:
        return None
    a, b = blobs[i], blobs[j]
    if a.xyz[0] > b.xyz[0]:
        a, b = b, a
    mid = 0.5 * (a.ijk + b.ijk)
    axis = (b.ijk - a.ijk) / np.linalg.norm(b.ijk - a.ijk)
    fwd, up = _forward_up(w, mid, axis, centre)
    runner = ranked[1][0] if len(ranked) > 1 else 0.0
    return Eyes(
        centres=np.stack([a.xyz, b.xyz]),
        radii_mm=np.array([a.radius, b.radius]),
        score=float(np.clip(score, 0, 1)),
        polarity=a.polarity,
        contrast=np.array([a.response, b.response]),
        distance_mm=float(np.linalg.norm(a.xyz - b.xyz)),
        depth_mm=np.array([a.depth, b.depth]),
        symmetry=feats["symmetry"],
        forward=_dir_to_world(w.affine, fwd),
        up=_dir_to_world(w.affine, up),
        details={"features": feats, "runner_up_score": runner, "n_blobs": len(blobs),
                 "head_centre": _to_world(w.affine, centre)},
    )


# ----------------------------------------------------------------------------- nose, lip, chin


def _midline_profile(w: _Work, eyes: Eyes, half_width_mm: float = 6.0):
    """Skin profile of the face's midline: for each mm "down" from the eyes, how far forward.

    Returns (down_mm, forward_mm, on_border) arrays; forward is NaN where no skin was found.
    """
    mid = eyes.midpoint
    fwd, up, axis = eyes.forward, eyes.up, eyes.axis
    down = np.arange(-10.0, 160.0, 1.0)
    ahead = np.arange(-20.0, 100.0, 0.5)
    lateral = np.arange(-half_width_mm, half_width_mm + 0.1, 2.0)
    pts = (mid[None, None, None, :] - down[:, None, None, None] * up
           + ahead[None, :, None, None] * fwd + lateral[None, None, :, None] * axis)
    inside = _sample(w.head.astype(np.float32), w.affine, pts, order=1) > 0.5
    edge = _sample(w.border.astype(np.float32), w.affine, pts, order=0) > 0.5
    inside_any = inside.any(axis=2)  # (down, ahead): head at any of the lateral offsets
    prof = np.full(len(down), np.nan)
    cut = np.zeros(len(down), bool)
    for n in range(len(down)):
        hits = np.nonzero(inside_any[n])[0]
        if len(hits):
            last = hits[-1]
            prof[n] = ahead[last]
            cut[n] = bool(edge[n, min(last + 1, len(ahead) - 1)].any()) or last == len(ahead) - 1
        # No skin at all: the row is outside the field of view (or past the chin).
        voxel = _to_voxel(w.affine, mid - down[n] * up)
        if np.any(voxel < -0.5) or np.any(voxel > np.array(w.head.shape) - 0.5):
            cut[n] = True
    return down, prof, cut


def trusted_eyes(volume, affine) -> Eyes | None:
    """:func:`find_eyes`, kept only when the pair scores at least ``TRUSTED_EYE_SCORE``: the eyes
    other checks may lean on (world mm of ``affine``), or None."""
    eyes = find_eyes(volume, affine)
    return eyes if eyes is not None and eyes.score >= TRUSTED_EYE_SCORE else None


def find_face_points(volume, affine, eyes: Eyes | None = None) -> FacePoints:
    """Nose tip, upper lip and chin (skin points on the face's midline, world mm).

    ``volume``: 3D array in voxel space; ``affine``: 4x4 voxel -> world mm; ``eyes``: the result
    of :func:`find_eyes` on the same image (found here when not given). Each point is None when
    the field of view does not hold it (many scans end below the nose) or no eyes were found.
    """
    if eyes is None:
        eyes = find_eyes(volume, affine)
    if eyes is None:
        return FacePoints(None, None, None)
    w = _work(volume, affine)
    down, prof, cut = _midline_profile(w, eyes)
    mid, fwd, up = eyes.midpoint, eyes.forward, eyes.up

    def point(n: int) -> np.ndarray:
        return mid - down[n] * up + prof[n] * fwd

    # Nose tip: the most protruding skin 25-65 mm below the eyes' centres.
    win = np.nonzero((down >= 20) & (down <= 65) & np.isfinite(prof))[0]
    if not len(win):
        return FacePoints(None, None, None)
    n_tip = win[np.nanargmax(prof[win])]
    tip_ok = not cut[n_tip] and n_tip not in (win[0], win[-1]) and prof[n_tip] > 15.0
    nose = point(n_tip) if tip_ok else None
    if nose is None:
        return FacePoints(None, None, None)

    # Below the tip the profile dips (subnasale), rises to the upper lip, dips at the mouth and
    # mentolabial sulcus, and rises to the chin. Each needs the field of view to reach past it.
    def next_peak(start: int, lo: float, hi: float):
        sel = np.nonzero((down >= down[start] + lo) & (down <= down[start] + hi))[0]
        if not len(sel) or cut[sel].any() or not np.isfinite(prof[sel]).all():
            return None
        n = sel[np.argmax(prof[sel])]
        if n in (sel[0], sel[-1]):
            return None
        return n

    n_lip = next_peak(n_tip, 10.0, 35.0)
    lip = point(n_lip) if n_lip is not None and prof[n_lip] < prof[n_tip] else None
    chin = None
    if n_lip is not None:
        n_chin = next_peak(n_tip, 40.0, 85.0)
        if n_chin is not None and n_chin > n_lip + 10:
            chin = point(n_chin)
    return FacePoints(nose, lip, chin)


def find_nose_tip(volume, affine, eyes: Eyes | None = None) -> np.ndarray | None:
    """The nose tip (world mm, shape (3,)) or None.

    ``volume``: 3D array in voxel space; ``affine``: 4x4 voxel -> world mm; ``eyes``: from
    :func:`find_eyes` on the same image (found here when not given). The tip is the skin point
    protruding farthest along the eyes' "forward" direction, 20-65 mm below their centres, on
    the midline; None when no eyes were found or the tip is at the edge of the field of view.
    """
    return find_face_points(volume, affine, eyes).nose_tip
