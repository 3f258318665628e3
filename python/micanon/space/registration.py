"""Registrations: T1w -> atlas (affine) and other contrasts -> T1w (rigid).

Registration runs on coarse copies (default 4 mm, 3 mm for ``robust``): a face mask does not
need sub-mm alignment, and this keeps one T1w to ~1-2 s. How far a fit can be trusted is judged
by :mod:`micanon.anonymize.fit_check` from evidence that does not come through the fit; the
quality here is the fit's own similarity, one witness among several.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from micanon.space import ants as ants_space
from micanon.space.grid import coarse_copy, resample
from micanon.space.similarity import head_mask, mutual_information, normalized_correlation

# The fit's own similarity witness (docs/registration-check.md gives the calibration): a T1w
# reference is compared with the T1w template by normalised correlation inside the template
# head; below POOR_NCC the witness says "poor".
POOR_NCC = 0.75
# A reference of another contrast (a session with no T1w) is not comparable with the T1w template
# by correlation; its witness is the overlap (Dice, inside its own field of view, 4 mm) of its
# head silhouette with the template's.
POOR_HEAD_DICE = 0.94
# A start from a quarter-turned orientation replaces the scanner-oriented fit only when its rigid
# fit scores this much higher (NCC at 8 mm): a wrong quarter turn of a real head can score
# nearly as well at 8 mm as the right pose.
TURN_MARGIN_NCC = 0.05
# A stand-in is T1-like when, inside the template's head (away from the air around it, which
# every contrast shows dark), its fitted voxels correlate with the T1w template at least this much:
# the T1w's own tissue contrast gives a clearly positive correlation there, an inverted one
# (T2w, FLAIR's dark fluid under a bright cortex) a negative or weak one.
T1_LIKE_NCC = 0.4
# The same for a contrast standing in for a missing T1w, whose poses are scored by mutual
# information (nats, 8 mm): NCC with the T1w template ranks an inverted contrast's poses wrongly.
TURN_MARGIN_MI = 0.05

# SyN settings of the face warp (levels at 8, 4, 2 mm on its 2 mm box), against the closed-skin
# reface target: MI with a 1.0 step moves the face by up to about a centimetre and stays smooth;
# CC and mean squares were slower and moved the identity no further.
FACE_SYN_METRIC = ("mattes", 32)
FACE_SYN_ITERATIONS = (200, 150, 100)
FACE_SYN_GRAD_STEP = 1.0
FACE_SYN_FLOW_SIGMA = 2.0

# A same-session contrast whose rigid fit moves it more than this from the scanner
# coordinates is not trusted: people do not move 15 mm or 15 degrees between scans.
MAX_SESSION_SHIFT_MM = 15.0
MAX_SESSION_ROTATION_DEG = 15.0
# A fit that ends this close to the scanner alignment (a fraction of a 3 mm voxel, a degree)
# confirms it: an image already aligned (no motion between scans, or the T1w itself named by
# --t1w) cannot be improved on, and the optimizer's sampling noise may leave the mutual
# information a hair lower. The scanner alignment is then kept as a good fit, not flagged poor.
CONFIRM_SHIFT_MM = 1.0
CONFIRM_ROTATION_DEG = 1.0
# An image sharing less information than this (nats, 3 mm copies) with the T1w cannot be
# registered to it (a TOF angiogram: vessels in an empty field; its rigid fits wander with the
# seed). It keeps the shared scanner coordinates, flagged "scanner". Contrasts with a head score
# an order of magnitude higher.
MIN_SESSION_MI = 0.05


@dataclass(frozen=True)
class Quality:
    """How well a registration fits: metric name, value, wall seconds, and flag (ok, scanner, poor).

    ``check``: for the reference's atlas fit, the verdict of :mod:`micanon.anonymize.fit_check`
    (its witnesses and evidence), whose flag this is.
    """

    metric: str
    value: float
    seconds: float
    flag: str
    check: dict | None = None

    def as_dict(self) -> dict:
        out = {"metric": self.metric, "value": round(float(self.value), 4), "seconds": round(self.seconds, 2), "flag": self.flag}
        return out if self.check is None else {**out, "check": self.check}


@dataclass(frozen=True)
class AtlasRegistration:
    """Affine from the native T1w scanner space to atlas space, with its quality."""

    native_to_atlas: np.ndarray
    quality: Quality
    t1_like: bool = True  # the image's contrast correlates with the T1w template like a T1w's


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

    best: tuple[float, np.ndarray, float] | None = None  # similarity, fit, handicap of its start
    for orientation, axis, degrees in starts:
        init = _translation(atlas_centre) @ _rotation(axis, degrees) @ _translation(-atlas_centre) @ start_from(orientation)
        atlas_to_native = ants_space.linear_fit(
            tpl_coarse, tpl_coarse_aff, t1_coarse, t1_coarse_aff, kind="Rigid", seed=seed, work_dir=work_dir,
            init=np.linalg.inv(init), mask=head_coarse, iterations=(100, 50), shrink=(2, 1), smoothing=(1, 0),
            sampling_rate=1.0,
        )
        moved = resample(t1_coarse, t1_coarse_aff, tpl_coarse.shape, tpl_coarse_aff, atlas_to_native)
        score = similarity(moved, tpl_coarse, head_coarse)
        turned = rotation_angle_deg(orientation)
        log(f"{time.perf_counter() - start:.1f}s atlas start {turned:.0f} deg turn, {axis}:{degrees:+.0f} deg -> {similarity.__name__} {score:.3f}")
        # A turned start must win clearly: on a real head a wrong quarter turn can fit nearly as
        # well at 8 mm as the right pose.
        handicap = turn_margin if turned > 1 else 0.0
        if best is None or score - handicap > best[0] - best[2]:
            best = (score, atlas_to_native, handicap)

    assert best is not None
    atlas_to_native = ants_space.linear_fit(
        tpl_fine, tpl_fine_aff, t1_fine, t1_fine_aff, kind="Affine", seed=seed, work_dir=work_dir,
        init=best[1], mask=head_fine,
        iterations=(100, 50) if not robust else (300, 200, 100), shrink=(2, 1) if not robust else (4, 2, 1),
        smoothing=(1, 0) if not robust else (2, 1, 0), sampling_rate=0.3,
    )

    moved = resample(t1_fine, t1_fine_aff, tpl_fine.shape, tpl_fine_aff, atlas_to_native)
    score = similarity(moved, tpl_fine, head_fine)
    if score < best[0] - 0.02:  # the refinement should never make things worse; keep the rigid fit
        atlas_to_native = best[1]
        moved = resample(t1_fine, t1_fine_aff, tpl_fine.shape, tpl_fine_aff, atlas_to_native)
        score = similarity(moved, tpl_fine, head_fine)
    seconds = time.perf_counter() - start
    # A stand-in is judged by what it is, not by its name: one whose fitted head shows a T1w's tissue
    # contrast (a T1w named FLAIR) is registered again exactly as a T1w is, and treated as one.
    if not t1w_contrast and contrast_correlation(moved, tpl_fine) >= T1_LIKE_NCC:
        log("reference -> atlas: a T1-like contrast; registered as a T1w")
        return register_to_atlas(t1w, t1w_affine, template, template_affine, template_head, robust=robust, seed=seed,
                                 work_dir=work_dir, log=log, t1w_contrast=True)
    if t1w_contrast:
        quality = Quality("ncc", score, seconds, "ok" if score >= POOR_NCC else "poor")
    else:
        overlap = head_overlap(t1_fine, t1_fine_aff, tpl_fine, tpl_fine_aff, atlas_to_native)
        quality = Quality("head_dice", overlap, seconds, "ok" if overlap >= POOR_HEAD_DICE else "poor")
    log(f"{'T1w' if t1w_contrast else 'reference'} -> atlas: {quality.metric} {quality.value:.3f} in {seconds:.1f} s ({quality.flag})")
    return AtlasRegistration(native_to_atlas=np.linalg.inv(atlas_to_native), quality=quality, t1_like=t1w_contrast)


def contrast_correlation(moved: np.ndarray, template: np.ndarray) -> float:
    """NCC of an image already fitted onto the template grid with the template, inside the
    template's head eroded by two voxels: tissue contrast, not head against air."""
    inside = ndimage.binary_erosion(head_mask(template), iterations=2)
    return normalized_correlation(moved, template, inside)


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
    flagged "poor", unless the fit ended within ``CONFIRM_SHIFT_MM`` / ``CONFIRM_ROTATION_DEG``
    of it: then it confirms the scanner alignment, which is kept as registered. An image that
    shares too little with the T1w to be registered at all (``MIN_SESSION_MI``) keeps the
    identity, flagged "scanner".
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
        # fixed = this image, moving = T1w: the fit maps image points to T1w points
        image_to_t1w = ants_space.linear_fit(
            im_c, im_c_aff, t1_c, t1_c_aff, kind="Rigid", seed=seed, work_dir=work_dir,
            iterations=(100, 50, 20), shrink=(4, 2, 1), smoothing=(2, 1, 0), sampling_rate=0.3,
        )
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
        if shift <= CONFIRM_SHIFT_MM and angle <= CONFIRM_ROTATION_DEG:  # confirms the scanner alignment: kept exactly
            image_to_t1w = np.eye(4)
            after = before
        else:
            notes.append(f"fit lowered mutual information ({before:.3f} -> {after:.3f})")
            registered = False
    if not registered:
        image_to_t1w = np.eye(4)
        after = before
    seconds = time.perf_counter() - start
    # an image with no usable fit still gets masks through scanner coordinates, flagged poor
    quality = Quality("mi", after, seconds, "ok" if registered else "poor")
    return SessionRegistration(image_to_t1w=image_to_t1w, registered=registered, quality=quality, notes=notes)


# ----------------------------------------------------------------------------- the face warp


def register_face(
    fixed: np.ndarray, moving: np.ndarray, box_affine: np.ndarray, *, metric_mask: np.ndarray, seed: int,
    work_dir: str | None = None, metric: tuple[str, int] | None = None,
) -> np.ndarray:
    """SyN displacement (mm, RAS, on the box grid ``box_affine``) taking ``moving`` toward ``fixed``.

    Both images are on the box grid; the metric sees only ``metric_mask``. The raw field: the
    caller tapers and integrates it (:mod:`micanon.anonymize.warp`). ``metric``: ANTs metric and
    its sampling (default ``FACE_SYN_METRIC``, for intensities).
    """
    return ants_space.syn_field(
        fixed, moving, box_affine, mask=metric_mask, seed=seed, work_dir=work_dir, metric=metric or FACE_SYN_METRIC,
        iterations=FACE_SYN_ITERATIONS, grad_step=FACE_SYN_GRAD_STEP, flow_sigma=FACE_SYN_FLOW_SIGMA,
    )
