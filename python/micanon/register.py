"""Registration: T1w -> atlas (affine) and other contrasts -> T1w (rigid), with ANTsPy.

Transforms are plain 4x4 matrices in RAS world millimetres (the NIfTI convention), named
``<from>_to_<to>``: a matrix that maps a point of the ``from`` scanner space to the matching
point of the ``to`` space. ANTs works in LPS and stores the inverse direction (fixed -> moving
points); the conversion happens here and nowhere else, so the rest of the engine composes
and inverts ordinary matrices. Registration runs on coarse copies (default 4 mm, 3 mm for
``robust``): a face mask does not need sub-mm alignment, and this keeps one T1w to ~1-2 s.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
import time
from dataclasses import dataclass, field

import ants
import numpy as np
from scipy import ndimage

_THREADS_VAR = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"

# RAS <-> LPS flip; its own inverse.
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

# Below this normalised correlation (T1w vs template, inside the template head) the T1w
# registration is flagged "poor". Good real heads give 0.85-0.95 with the pydeface mean head;
# a 20 degree mis-rotation drops to ~0.7.
POOR_NCC = 0.75
# A reference that is not a T1w (a session with no T1w) cannot be judged by its correlation with
# the T1w template (the built-in example's T2w, well registered: NCC 0.75). It is judged by the
# overlap (Dice, inside its own field of view, 4 mm) of its head silhouette with the template's:
# well registered 0.946-0.988 (example T1w and T2w, person A's T1w), moved 20 deg / 15 deg /
# 10 mm off 0.897-0.938.
POOR_HEAD_DICE = 0.94
# A start from a quarter-turned orientation replaces the scanner-oriented fit only when its rigid
# fit scores this much higher (NCC at 8 mm).
TURN_MARGIN_NCC = 0.05
# The same for a contrast standing in for a missing T1w, whose poses are scored by mutual
# information (nats, 8 mm): NCC with the T1w template ranks an inverted contrast's poses wrongly
# (a T2w-like head with its header's axes turned 90 deg landed 74 mm off).
TURN_MARGIN_MI = 0.05

# A same-session contrast whose rigid fit moves it more than this from the scanner
# coordinates is not trusted: people do not move 15 mm or 15 degrees between scans.
MAX_SESSION_SHIFT_MM = 15.0
MAX_SESSION_ROTATION_DEG = 15.0
# An image sharing less information than this (nats, 3 mm copies) with the T1w cannot be
# registered to it: person A's TOF angiogram (vessels in an empty field) scores 0.010, and its
# rigid fits landed 10-25 mm apart with seeds 1-3. It keeps the shared scanner coordinates,
# flagged "scanner". Contrasts with a head (person A's PDw) score 0.88.
MIN_SESSION_MI = 0.05


@dataclass(frozen=True)
class Quality:
    """How well a registration fits: metric name, value, wall seconds, and flag (ok, scanner, poor)."""

    metric: str
    value: float
    seconds: float
    flag: str

    def as_dict(self) -> dict:
        return {"metric": self.metric, "value": round(float(self.value), 4), "seconds": round(self.seconds, 2), "flag": self.flag}


@dataclass(frozen=True)
class AtlasRegistration:
    """Affine from the native T1w scanner space to atlas space, with its quality."""

    native_to_atlas: np.ndarray
    quality: Quality


@dataclass(frozen=True)
class SessionRegistration:
    """Rigid from another image's scanner space to the T1w's scanner space.

    ``registered`` is False when the fit failed its sanity checks and the identity (shared
    scanner coordinates) is used instead.
    """

    image_to_t1w: np.ndarray
    registered: bool
    quality: Quality
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- grids


def zooms_of(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along each voxel axis of an affine."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def resample(
    data: np.ndarray,
    data_affine: np.ndarray,
    shape: tuple[int, ...],
    affine: np.ndarray,
    target_to_data: np.ndarray | None = None,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """Sample ``data`` (on grid ``data_affine``) onto grid (``shape``, ``affine``).

    ``target_to_data`` maps target world points to data world points (identity when both
    live in the same scanner space). Returns float32 on the target grid.
    """
    world = np.eye(4) if target_to_data is None else target_to_data
    vox = np.linalg.inv(data_affine) @ world @ affine
    out = ndimage.affine_transform(
        np.asarray(data, dtype=np.float32), vox[:3, :3], vox[:3, 3], output_shape=tuple(shape),
        order=order, mode="constant", cval=cval, prefilter=False,
    )
    return out.astype(np.float32, copy=False)


def coarse_grid(shape: tuple[int, ...], affine: np.ndarray, voxel_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """A grid covering the same box with ~``voxel_mm`` voxels along the same axes (never finer)."""
    zooms = zooms_of(affine)
    factor = np.maximum(voxel_mm / zooms, 1.0)
    new_shape = tuple(int(n) for n in np.maximum(np.ceil(np.asarray(shape[:3]) / factor), 1))
    new_affine = np.array(affine, dtype=float)
    new_affine[:3, :3] = affine[:3, :3] * factor
    # keep the box: first coarse voxel centre sits (factor-1)/2 fine voxels in
    new_affine[:3, 3] = (affine @ np.r_[(factor - 1) / 2, 1.0])[:3]
    return new_shape, new_affine


def coarse_copy(data: np.ndarray, affine: np.ndarray, voxel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased copy of ``data`` on a ~``voxel_mm`` grid (same scanner space)."""
    shape, new_affine = coarse_grid(data.shape, affine, voxel_mm)
    factor = zooms_of(new_affine) / zooms_of(affine)
    sigma = np.where(factor > 1, 0.42 * factor, 0.0)  # Gaussian matched to the box width
    smooth = ndimage.gaussian_filter(np.asarray(data, np.float32), sigma) if np.any(sigma > 0) else data
    return resample(smooth, affine, shape, new_affine), new_affine


def to_ants(data: np.ndarray, affine: np.ndarray) -> ants.ANTsImage:
    """An ANTs image of ``data`` on its NIfTI grid (RAS affine -> ITK LPS origin/direction)."""
    lps = _LPS @ affine
    spacing = zooms_of(affine)
    direction = lps[:3, :3] / spacing
    return ants.from_numpy(
        np.ascontiguousarray(data, dtype=np.float32), origin=tuple(lps[:3, 3]),
        spacing=tuple(spacing), direction=direction,
    )


def _ants_affine_to_ras(path: str) -> np.ndarray:
    """Read an ANTs .mat (fixed LPS -> moving LPS) as a 4x4 RAS matrix (same direction)."""
    tx = ants.read_transform(path)
    params = np.asarray(tx.parameters, dtype=float)
    center = np.asarray(tx.fixed_parameters, dtype=float)
    matrix = params[:9].reshape(3, 3)
    translation = params[9:12]
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = translation + center - matrix @ center
    return _LPS @ lps @ _LPS


def _write_ants_affine(ras_fixed_to_moving: np.ndarray, path: str) -> str:
    lps = _LPS @ ras_fixed_to_moving @ _LPS
    tx = ants.create_ants_transform(
        transform_type="AffineTransform", precision="float", dimension=3,
        matrix=lps[:3, :3], translation=lps[:3, 3], center=np.zeros(3),
    )
    ants.write_transform(tx, path)
    return path


@contextlib.contextmanager
def reproducible_ants(seed: int):
    """Run ANTs calls with a fixed seed on one thread, restoring the caller's settings after.

    ANTs' metrics sum per-thread partial results in an order that varies run to run, so two
    threads give a slightly different transform each time (measured: NCC 0.783-0.788 on person
    A); one thread gives the same bytes every run, whatever the caller's thread count. ANTs reads
    the thread count from the environment at each call. ANTsPy reads its seed from a module global.
    """
    previous_seed = ants.config._random_seed
    previous_threads = os.environ.get(_THREADS_VAR)
    ants.config._random_seed = int(seed)
    os.environ[_THREADS_VAR] = "1"
    try:
        yield
    finally:
        ants.config._random_seed = previous_seed
        if previous_threads is None:
            os.environ.pop(_THREADS_VAR, None)
        else:
            os.environ[_THREADS_VAR] = previous_threads


# ----------------------------------------------------------------------------- masks and measures


def otsu_threshold(values: np.ndarray, bins: int = 128) -> float:
    """Otsu's threshold of a set of values (used to find the head in any contrast)."""
    values = values[np.isfinite(values)]
    hi = np.percentile(values, 99.5)
    lo = values.min()
    hist, edges = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    weight0 = np.cumsum(hist)
    weight1 = weight0[-1] - weight0
    mean0 = np.cumsum(hist * centers) / np.maximum(weight0, 1)
    mean1 = (np.sum(hist * centers) - np.cumsum(hist * centers)) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float(centers[int(np.argmax(between[:-1]))])


def head_mask(data: np.ndarray) -> np.ndarray:
    """Largest connected foreground blob of a (coarse) head image, holes filled."""
    mask = data > otsu_threshold(data.ravel())
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, count + 1))
    mask = labels == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2))


def normalized_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of two images over a mask (0 where undefined)."""
    x = a[mask].astype(np.float64)
    y = b[mask].astype(np.float64)
    if x.size < 10 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def mutual_information(a: np.ndarray, b: np.ndarray, mask: np.ndarray, bins: int = 32) -> float:
    """Mutual information (nats) of two images over a mask, from a joint histogram."""
    x, y = a[mask], b[mask]
    if x.size < 10:
        return 0.0
    joint, _, _ = np.histogram2d(x, y, bins=bins)
    p = joint / joint.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())


def _upper_head_centre(mask: np.ndarray, affine: np.ndarray, depth_mm: float = 110.0, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """World centroid of the head part within ``depth_mm`` of its top along ``up`` (ignores neck
    and shoulders)."""
    ijk = np.argwhere(mask)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    height = world @ np.asarray(up, float)
    keep = height > height.max() - depth_mm
    return world[keep].mean(axis=0)


def _quarter_turns() -> list[np.ndarray]:
    """The 24 rotations (4x4) taking the coordinate axes onto coordinate axes, identity first."""
    turns = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            turn = np.eye(4)
            turn[:3, :3] = 0.0
            turn[range(3), order] = signs
            if np.linalg.det(turn[:3, :3]) > 0:
                turns.append(turn)
    return sorted(turns, key=lambda t: -np.trace(t))


_QUARTER_TURNS = _quarter_turns()


def _rotation(axis: int, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    rot = np.eye(4)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


def _translation(vector: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, 3] = vector
    return out


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """Rotation angle (degrees) of the rotation part of a rigid 4x4 matrix."""
    rot = matrix[:3, :3]
    u, _, vt = np.linalg.svd(rot)
    rot = u @ vt
    return float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1))))


# ----------------------------------------------------------------------------- T1w -> atlas


def register_to_atlas(
    t1w: np.ndarray,
    t1w_affine: np.ndarray,
    template: np.ndarray,
    template_affine: np.ndarray,
    template_head: np.ndarray,
    *,
    robust: bool = False,
    seed: int = 1,
    work_dir: str | None = None,
    log=lambda msg: None,
    t1w_contrast: bool = True,
) -> AtlasRegistration:
    """Affine from the native T1w (scanner RAS) to the atlas template (atlas RAS).

    Initialised from the centres of the upper head (robust to neck and shoulders in the FOV,
    to far-off origins and to any voxel orientation); a few starting rotations are each fitted
    rigidly at 8 mm, plus one from the best of the 24 quarter-turned orientations (a header with
    mislabelled axes; it must beat the scanner-oriented fits by ``TURN_MARGIN_NCC``), and the
    best is refined with a full affine at 4 mm. ``robust``: 3 mm, more starting rotations, each
    also from the quarter-turned orientation. Quality is the normalised correlation of the
    T1w resampled into the template, inside the template head (dilated 10 mm); for another
    contrast standing in (``t1w_contrast`` False), the overlap of the head silhouettes
    (:func:`head_overlap`).
    """
    start = time.perf_counter()
    similarity = normalized_correlation if t1w_contrast else mutual_information
    turn_margin = TURN_MARGIN_NCC if t1w_contrast else TURN_MARGIN_MI
    fine_mm = 3.0 if robust else 4.0
    t1_fine, t1_fine_aff = coarse_copy(t1w, t1w_affine, fine_mm)
    tpl_fine, tpl_fine_aff = coarse_copy(template, template_affine, fine_mm)
    t1_coarse, t1_coarse_aff = coarse_copy(t1_fine, t1_fine_aff, 8.0)
    tpl_coarse, tpl_coarse_aff = coarse_copy(tpl_fine, tpl_fine_aff, 8.0)
    head_fine = resample(template_head.astype(np.float32), template_affine, tpl_fine.shape, tpl_fine_aff) > 0.5
    head_fine = ndimage.binary_dilation(head_fine, iterations=max(1, int(round(10 / fine_mm))))
    head_coarse = resample(template_head.astype(np.float32), template_affine, tpl_coarse.shape, tpl_coarse_aff) > 0.5
    head_coarse = ndimage.binary_dilation(head_coarse, iterations=1)

    native_head = head_mask(t1_coarse)
    atlas_centre = _upper_head_centre(head_coarse, tpl_coarse_aff)

    def start_from(orientation: np.ndarray) -> np.ndarray:
        # the native head's upper part, "upper" as the orientation sees it, onto the atlas's
        up = orientation[:3, :3].T @ np.array([0.0, 0.0, 1.0])
        return _translation(atlas_centre) @ orientation @ _translation(-_upper_head_centre(native_head, t1_coarse_aff, up=up))

    tilts = [(0, 0.0)]
    if robust:
        tilts += [(0, a) for a in (-30, -15, 15, 30)] + [(1, a) for a in (-20, 20)] + [(2, a) for a in (-20, 20)]
    else:
        tilts += [(0, -15.0), (0, 15.0)]
    starts = [(np.eye(4), axis, degrees) for axis, degrees in tilts]
    # A header whose axes are mislabelled shows the head turned by quarter turns, and a fit from
    # the scanner's orientation then lands far off with a fair score (a 90 deg yaw: NCC 0.83).
    # Score all 24 axis-aligned orientations on the 8 mm copies (a few ms each) and also fit
    # from the best: untilted in the quick search, with every tilt under ``robust``.
    scan = [(similarity(resample(t1_coarse, t1_coarse_aff, tpl_coarse.shape, tpl_coarse_aff,
                                             np.linalg.inv(start_from(r))), tpl_coarse, head_coarse), n)
            for n, r in enumerate(_QUARTER_TURNS)]
    best_turn = _QUARTER_TURNS[max(scan)[1]]
    if not np.allclose(best_turn, np.eye(4)):
        starts += [(best_turn, axis, degrees) for axis, degrees in (tilts if robust else tilts[:1])]
        log(f"orientation scan: also starting {rotation_angle_deg(best_turn):.0f} deg turned from the scanner axes")

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp, reproducible_ants(seed):
        fixed_coarse = to_ants(tpl_coarse, tpl_coarse_aff)
        moving_coarse = to_ants(t1_coarse, t1_coarse_aff)
        mask_coarse = to_ants(head_coarse.astype(np.float32), tpl_coarse_aff)
        best: tuple[float, np.ndarray, float] | None = None  # similarity, fit, handicap of its start
        for n, (orientation, axis, degrees) in enumerate(starts):
            init = _translation(atlas_centre) @ _rotation(axis, degrees) @ _translation(-atlas_centre) @ start_from(orientation)
            init_path = _write_ants_affine(np.linalg.inv(init), os.path.join(tmp, f"init{n}.mat"))
            fit = ants.registration(
                fixed_coarse, moving_coarse, type_of_transform="Rigid", initial_transform=[init_path],
                outprefix=os.path.join(tmp, f"rigid{n}_"), mask=mask_coarse,
                aff_metric="mattes", aff_iterations=(100, 50), aff_shrink_factors=(2, 1),
                aff_smoothing_sigmas=(1, 0), aff_random_sampling_rate=1.0,
            )
            atlas_to_native = _ants_affine_to_ras(fit["fwdtransforms"][0])
            moved = resample(t1_coarse, t1_coarse_aff, tpl_coarse.shape, tpl_coarse_aff, atlas_to_native)
            score = similarity(moved, tpl_coarse, head_coarse)
            turned = rotation_angle_deg(orientation)
            log(f"{time.perf_counter() - start:.1f}s atlas start {turned:.0f} deg turn, {axis}:{degrees:+.0f} deg -> {similarity.__name__} {score:.3f}")
            # A turned start must win clearly: on a real head a wrong quarter turn can fit nearly
            # as well at 8 mm as the right pose (person A: 0.779 vs 0.788).
            handicap = turn_margin if rotation_angle_deg(orientation) > 1 else 0.0
            if best is None or score - handicap > best[0] - best[2]:
                best = (score, atlas_to_native, handicap)

        assert best is not None
        init_path = _write_ants_affine(best[1], os.path.join(tmp, "best.mat"))
        fit = ants.registration(
            to_ants(tpl_fine, tpl_fine_aff), to_ants(t1_fine, t1_fine_aff), type_of_transform="Affine",
            initial_transform=[init_path], outprefix=os.path.join(tmp, "affine_"),
            mask=to_ants(head_fine.astype(np.float32), tpl_fine_aff),
            aff_metric="mattes", aff_iterations=(100, 50) if not robust else (300, 200, 100),
            aff_shrink_factors=(2, 1) if not robust else (4, 2, 1),
            aff_smoothing_sigmas=(1, 0) if not robust else (2, 1, 0), aff_random_sampling_rate=0.3,
        )
        atlas_to_native = _ants_affine_to_ras(fit["fwdtransforms"][0])

    moved = resample(t1_fine, t1_fine_aff, tpl_fine.shape, tpl_fine_aff, atlas_to_native)
    score = similarity(moved, tpl_fine, head_fine)
    if score < best[0] - 0.02:  # the refinement should never make things worse; keep the rigid fit
        atlas_to_native = best[1]
        moved = resample(t1_fine, t1_fine_aff, tpl_fine.shape, tpl_fine_aff, atlas_to_native)
        score = similarity(moved, tpl_fine, head_fine)
    seconds = time.perf_counter() - start
    if t1w_contrast:
        quality = Quality("ncc", score, seconds, "ok" if score >= POOR_NCC else "poor")
    else:
        overlap = head_overlap(t1_fine, t1_fine_aff, tpl_fine, tpl_fine_aff, atlas_to_native)
        quality = Quality("head_dice", overlap, seconds, "ok" if overlap >= POOR_HEAD_DICE else "poor")
    log(f"{'T1w' if t1w_contrast else 'reference'} -> atlas: {quality.metric} {quality.value:.3f} in {seconds:.1f} s ({quality.flag})")
    return AtlasRegistration(native_to_atlas=np.linalg.inv(atlas_to_native), quality=quality)


def head_overlap(native: np.ndarray, native_affine: np.ndarray, template: np.ndarray, template_affine: np.ndarray,
                 atlas_to_native: np.ndarray) -> float:
    """Dice of the native head silhouette (moved into the template) with the template's, counted
    inside the native field of view (partial coverage does not count against it)."""
    moved = resample(head_mask(native).astype(np.float32), native_affine, template.shape, template_affine, atlas_to_native) > 0.5
    seen = resample(np.ones(native.shape, np.float32), native_affine, template.shape, template_affine, atlas_to_native) > 0.5
    a, b = moved & seen, head_mask(template) & seen
    total = int(a.sum() + b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 0.0


# ----------------------------------------------------------------------------- contrast -> T1w


def register_to_t1w(
    image: np.ndarray,
    image_affine: np.ndarray,
    t1w: np.ndarray,
    t1w_affine: np.ndarray,
    *,
    seed: int = 1,
    work_dir: str | None = None,
) -> SessionRegistration:
    """Rigid from an image of the same session (scanner RAS) to the T1w (scanner RAS).

    Mutual information on 3 mm copies, starting from the shared scanner coordinates. The fit
    is kept only if it raises the mutual information and stays within 15 mm / 15 degrees of
    the scanner alignment; otherwise the identity is returned with ``registered=False``,
    flagged "poor". An image that shares too little with the T1w to be registered at all
    (``MIN_SESSION_MI``) keeps the identity, flagged "scanner".
    """
    start = time.perf_counter()
    t1_c, t1_c_aff = coarse_copy(t1w, t1w_affine, 3.0)
    im_c, im_c_aff = coarse_copy(image, image_affine, 3.0)
    notes: list[str] = []

    def mi_after(image_to_t1w: np.ndarray) -> float:
        # MI over the image's own field of view, in the image's grid (partial coverage safe)
        t1_on_image = resample(t1_c, t1_c_aff, im_c.shape, im_c_aff, image_to_t1w)
        inside = resample(np.ones_like(t1_c), t1_c_aff, im_c.shape, im_c_aff, image_to_t1w) > 0.99
        return mutual_information(im_c, t1_on_image, inside)

    before = mi_after(np.eye(4))
    image_to_t1w = np.eye(4)
    if before < MIN_SESSION_MI:
        seconds = time.perf_counter() - start
        note = f"shares too little with the T1w to register (mutual information {before:.3f} < {MIN_SESSION_MI} nats)"
        return SessionRegistration(image_to_t1w=image_to_t1w, registered=False,
                                   quality=Quality("mi", before, seconds, "scanner"), notes=[note])
    try:
        with tempfile.TemporaryDirectory(dir=work_dir) as tmp, reproducible_ants(seed):
            fit = ants.registration(
                to_ants(im_c, im_c_aff), to_ants(t1_c, t1_c_aff), type_of_transform="Rigid",
                initial_transform=["Identity"], outprefix=os.path.join(tmp, "rigid_"),
                aff_metric="mattes", aff_iterations=(100, 50, 20), aff_shrink_factors=(4, 2, 1),
                aff_smoothing_sigmas=(2, 1, 0), aff_random_sampling_rate=0.3,
            )
            # fixed = this image, moving = T1w: ANTs maps image points to T1w points
            image_to_t1w = _ants_affine_to_ras(fit["fwdtransforms"][0])
    except RuntimeError as exc:
        notes.append(f"rigid registration failed ({exc})")
    after = mi_after(image_to_t1w)
    centre = im_c_aff @ np.r_[(np.asarray(im_c.shape) - 1) / 2, 1.0]
    shift = float(np.linalg.norm((image_to_t1w @ centre - centre)[:3]))  # at the FOV centre, not the origin
    angle = rotation_angle_deg(image_to_t1w)
    registered = not notes
    if registered and (shift > MAX_SESSION_SHIFT_MM or angle > MAX_SESSION_ROTATION_DEG):
        notes.append(f"fit moved {shift:.1f} mm / {angle:.1f} deg from scanner alignment")
        registered = False
    if registered and after < before:
        notes.append(f"fit lowered mutual information ({before:.3f} -> {after:.3f})")
        registered = False
    if not registered:
        image_to_t1w = np.eye(4)
        after = before
    seconds = time.perf_counter() - start
    # an image with no usable fit still gets masks through scanner coordinates, flagged poor
    quality = Quality("mi", after, seconds, "ok" if registered else "poor")
    return SessionRegistration(image_to_t1w=image_to_t1w, registered=registered, quality=quality, notes=notes)
