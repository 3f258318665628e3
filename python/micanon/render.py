"""Quality-control pictures of a head: 3D surface renders and slice views.

Spaces. Every function takes a NIfTI image (a path or a nibabel image) in its own scanner
space and resamples it through its full voxel-to-world affine, so oblique or non-RAS grids come
out upright. Pictures are drawn in the *viewing frame*: scanner RAS+ millimetres, or, when a
``head_affine`` is given, the frame that affine maps the head into (e.g. the atlas), so a tilted
head is seen upright. Only the rotation of ``head_affine`` is used: scaling it to the atlas would
change the proportions of the face that face recognition measures.

Renders are uint8 grey images, row 0 at the top; a front view shows the subject's right on the
image's left, as when facing the person.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import nibabel as nib
import numpy as np
import scipy.ndimage as ndi
from PIL import Image

from micanon.space.similarity import otsu_threshold

ImageLike = str | Path | nib.spatialimages.SpatialImage


@dataclass(frozen=True)
class View:
    """A camera direction around the head.

    ``yaw_deg`` > 0 moves the camera toward the subject's left (90 = left profile);
    ``pitch_deg`` > 0 raises it above the face, looking down.
    """

    yaw_deg: float
    pitch_deg: float


VIEWS: dict[str, View] = {
    "front": View(0.0, 0.0),
    "left45": View(45.0, 0.0),
    "right45": View(-45.0, 0.0),
    "left90": View(90.0, 0.0),
    "right90": View(-90.0, 0.0),
    # Low views matter most: a head whose field of view ends below the nose (no mouth, no
    # chin) is only recognised as a face when seen from below (measured, docs/qc-calibration.md).
    "front_low": View(0.0, -25.0),
    "left_low": View(20.0, -25.0),
    "right_low": View(-20.0, -25.0),
    "front_high": View(0.0, 15.0),
}
ALL_VIEWS: tuple[str, ...] = tuple(VIEWS)

DEFAULT_SIZE = 320  # px; a face then spans ~150-200 px, well above dlib HOG's ~80 px minimum
STEP_MM = 1.0  # ray-casting grid; the depth map is upsampled to the output size afterwards
COARSE_MM = 3.0  # first pass, finds roughly where each ray meets the skin
WINDOW_SAMPLES = 12  # fine samples per ray and pass, STEP_MM apart
SMOOTH_MM = 0.8  # light smoothing so the skin is a surface, not voxel noise
MIN_HEAD_ML = 500.0  # a head (even one cut below the nose) holds litres; an angiogram's vessels hold millilitres
MIN_OTSU_SEPARATION = 0.6  # Otsu's between-class / total variance; air vs head gives ~0.85
PAD_MM = 6.0


@dataclass(frozen=True)
class SkinThreshold:
    """The intensity taken as the skin surface, and whether that surface is a head at all.

    ``ok`` is False when the image has no head-shaped surface to render (e.g. a time-of-flight
    angiogram, where only vessels rise above the threshold); ``reason`` then says why.
    """

    value: float
    ok: bool
    reason: str
    otsu_separation: float
    head_volume_ml: float


@dataclass(frozen=True)
class HeadRenders:
    """Surface renders of one head.

    ``views`` maps view name to a uint8 grey image (empty when ``skin.ok`` is False);
    ``depth_mm`` maps view name to the float32 first-hit distance from the image plane, NaN where
    a ray missed the head (at the output size); ``mm_per_pixel`` is the scale of every view.
    ``camera``: the head centroid (scanner RAS mm) and bounding radius (mm) the views were framed
    on (None when nothing was rendered); pass it to :func:`render_views` to frame another head
    on the same grid exactly as this one.
    """

    views: dict[str, np.ndarray]
    depth_mm: dict[str, np.ndarray]
    skin: SkinThreshold
    mm_per_pixel: float
    camera: tuple[np.ndarray, float] | None = None


@dataclass(frozen=True)
class _Volume:
    """The smoothed head on its (possibly decimated) voxel grid, speckle outside the head zeroed."""

    data: np.ndarray  # float32, voxel grid
    affine: np.ndarray  # voxel -> scanner RAS mm
    skin: SkinThreshold
    centre_world: np.ndarray  # head centroid, scanner RAS mm
    radius_mm: float  # bounding radius of the head about its centroid


def load(image: ImageLike) -> nib.spatialimages.SpatialImage:
    """Return a nibabel image for a path or pass an image through unchanged."""
    if isinstance(image, (str, Path)):
        return nib.load(str(image))
    return image


def pick_skin_threshold(data: np.ndarray, voxel_mm: tuple[float, float, float]) -> SkinThreshold:
    """Choose the skin iso-surface value of a smoothed head volume (any structural contrast).

    Otsu on a ~2 mm decimated copy splits air from head in T1w, T2w, PDw and FLAIR alike (air
    fills a large share of every head field of view). The result is judged: the head must be
    well separated from air and hold a head's volume, else ``ok`` is False.
    """
    stride = tuple(max(1, int(round(2.0 / z))) for z in voxel_mm)
    sample = data[:: stride[0], :: stride[1], :: stride[2]]
    value, separation = otsu_threshold(sample)
    voxel_ml = float(np.prod(voxel_mm)) * float(np.prod(stride)) / 1000.0
    head = _largest_component(sample > value)
    head_ml = float(head.sum()) * voxel_ml
    if separation < MIN_OTSU_SEPARATION:
        return SkinThreshold(value, False, f"no air/head contrast (Otsu separation {separation:.2f})", separation, head_ml)
    if head_ml < MIN_HEAD_ML:
        return SkinThreshold(
            value, False, f"largest bright object is {head_ml:.0f} ml, not a head (angiogram or cropped slab?)", separation, head_ml
        )
    return SkinThreshold(value, True, "", separation, head_ml)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndi.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _prepare(img: nib.spatialimages.SpatialImage, threshold: float | None = None) -> _Volume:
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim > 3:
        data = data.reshape(data.shape[:3] + (-1,))[..., 0]
    data = np.nan_to_num(data, copy=False)
    affine = img.affine.astype(np.float64)
    voxel_mm = tuple(float(z) for z in np.linalg.norm(affine[:3, :3], axis=0))
    # Decimate fine grids to ~1 mm: the render grid is 1 mm, finer input only costs time.
    stride = tuple(max(1, int(round(1.0 / z))) for z in voxel_mm)
    data = ndi.gaussian_filter(data, [max(SMOOTH_MM * s, SMOOTH_MM) / z for z, s in zip(voxel_mm, stride)])
    if stride != (1, 1, 1):
        data = np.ascontiguousarray(data[:: stride[0], :: stride[1], :: stride[2]])
        affine = affine @ np.diag([*stride, 1.0])
        voxel_mm = tuple(z * s for z, s in zip(voxel_mm, stride))
    skin = pick_skin_threshold(data, voxel_mm)
    if threshold is not None:
        skin = SkinThreshold(float(threshold), True, "threshold given by caller", skin.otsu_separation, skin.head_volume_ml)
    head = _largest_component(data > skin.value)
    if not head.any():
        return _Volume(data, affine, skin, affine[:3, 3].copy(), 0.0)
    # Zero speckle and ghosting outside the head so a ray cannot stop in front of the face;
    # the margin keeps the interpolated iso-surface itself untouched.
    keep = ndi.binary_dilation(head, iterations=2)
    data[~keep] = 0.0
    ijk = np.argwhere(head[::2, ::2, ::2]) * 2
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    centre = world.mean(axis=0)
    radius = float(np.percentile(np.linalg.norm(world - centre, axis=1), 99.9)) + PAD_MM
    return _Volume(data, affine, skin, centre, radius)


def rotation_of(head_affine: np.ndarray | None) -> np.ndarray:
    """The proper rotation closest to a 4x4 (or 3x3) head-to-frame affine (identity for None)."""
    if head_affine is None:
        return np.eye(3)
    linear = np.asarray(head_affine, dtype=np.float64)[:3, :3]
    u, _, vt = np.linalg.svd(linear)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        raise ValueError("head_affine mirrors the head (negative determinant); expected a rotation-like affine")
    return rotation


def camera_axes(view: View) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, up, toward_camera) unit vectors of a view, in the viewing frame (RAS)."""
    yaw, pitch = np.deg2rad(view.yaw_deg), np.deg2rad(view.pitch_deg)
    toward = np.array([-np.sin(yaw) * np.cos(pitch), np.cos(yaw) * np.cos(pitch), np.sin(pitch)])
    up = np.array([0.0, 0.0, 1.0]) - toward[2] * toward
    up /= np.linalg.norm(up)
    right = np.cross(up, toward)
    return right, up, toward


def _first_crossing(samples: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Along the last axis: (ray hit?, fractional sample index of the first upward crossing)."""
    inside = samples >= threshold
    hit = inside.any(axis=-1)
    k = np.argmax(inside, axis=-1)
    after = np.take_along_axis(samples, k[..., None], axis=-1)[..., 0]
    before = np.take_along_axis(samples, np.maximum(k - 1, 0)[..., None], axis=-1)[..., 0]
    # Linear between the last sample outside and the first inside.
    fraction = np.where(k > 0, (threshold - before) / np.maximum(after - before, 1e-6), 1.0)
    return hit, k - 1 + np.clip(fraction, 0.0, 1.0)


def _cast(volume: _Volume, view: View, head_rotation: np.ndarray) -> np.ndarray:
    """First-hit depth (mm from the image plane, NaN for a miss) on the STEP_MM ray grid.

    Coarse to fine: rays every COARSE_MM find roughly where the skin is; then each fine ray
    samples only a short window starting just in front of the shallowest coarse hit around it.
    """
    right, up, toward = camera_axes(view)
    radius = volume.radius_mm
    threshold = volume.skin.value
    voxel_from_world = np.linalg.inv(volume.affine)
    # (row mm, column mm, depth mm) from the image plane's top-left corner -> voxel index.
    linear = voxel_from_world[:3, :3] @ head_rotation.T @ np.stack([-up, right, -toward], axis=1)
    corner = volume.centre_world + head_rotation.T @ (radius * (up - right + toward))
    origin = voxel_from_world[:3, :3] @ corner + voxel_from_world[:3, 3]
    # A ray that has not met the head a quarter radius past its centre will not meet it at all
    # for any head-like shape; stopping there saves ~40 % of the samples.
    reach = 1.25 * radius
    n_coarse = int(np.ceil(2 * radius / COARSE_MM)) + 1
    coarse = ndi.affine_transform(
        volume.data,
        linear * COARSE_MM,
        offset=origin,
        output_shape=(n_coarse, n_coarse, int(np.ceil(reach / COARSE_MM)) + 1),
        order=1,
        cval=0.0,
        prefilter=False,
    )
    coarse_hit, coarse_k = _first_crossing(coarse, threshold)
    coarse_depth = np.where(coarse_hit, coarse_k * COARSE_MM, np.inf)
    nearest = ndi.minimum_filter(coarse_depth, size=3, mode="constant", cval=np.inf)
    deepest = ndi.maximum_filter(np.where(coarse_hit, coarse_depth, -np.inf), size=3, mode="constant", cval=-np.inf)

    n = int(np.ceil(2 * radius / STEP_MM)) + 1
    to_coarse = np.minimum(np.round(np.arange(n) * STEP_MM / COARSE_MM).astype(int), n_coarse - 1)
    start = nearest[np.ix_(to_coarse, to_coarse)] - 2 * COARSE_MM
    stop = deepest[np.ix_(to_coarse, to_coarse)] + COARSE_MM
    depth = np.full((n, n), np.nan, dtype=np.float32)
    rows, cols = np.nonzero(np.isfinite(start))
    # Whole steps, so fine samples sit where a brute-force 1 mm march would put them.
    start = np.floor(np.maximum(start[rows, cols], 0.0) / STEP_MM) * STEP_MM
    stop = stop[rows, cols]
    window = np.arange(WINDOW_SAMPLES) * STEP_MM
    # Most rays cross the skin in the first window; steep flanks (nose side, ear) need more.
    while rows.size:
        along = start[:, None] + window[None, :]
        points = (rows * STEP_MM)[None, :, None] * linear[:, 0, None, None]
        points = points + (cols * STEP_MM)[None, :, None] * linear[:, 1, None, None]
        points = points + along[None] * linear[:, 2, None, None] + origin[:, None, None]
        samples = ndi.map_coordinates(volume.data, points.reshape(3, -1), order=1, cval=0.0, prefilter=False)
        hit, k = _first_crossing(samples.reshape(rows.size, WINDOW_SAMPLES), threshold)
        depth[rows[hit], cols[hit]] = start[hit] + k[hit] * STEP_MM
        # Windows overlap by one sample so a crossing at a window edge is not lost.
        start = start + (WINDOW_SAMPLES - 1) * STEP_MM
        again = ~hit & (start < stop)
        rows, cols, start, stop = rows[again], cols[again], start[again], stop[again]
    return depth


def _upsample_depth(depth: np.ndarray, size: int) -> np.ndarray:
    hit = np.isfinite(depth)
    far = np.nanmax(depth) if hit.any() else 0.0
    factor = size / depth.shape[0]
    filled = ndi.zoom(np.where(hit, depth, far), factor, order=1, grid_mode=True, mode="nearest")
    mask = ndi.zoom(hit.astype(np.float32), factor, order=1, grid_mode=True, mode="nearest") >= 0.5
    return np.where(mask, filled, np.nan).astype(np.float32)


def shade(depth_mm: np.ndarray, mm_per_pixel: float) -> np.ndarray:
    """Lambert-shade a depth map (mm from the image plane, NaN = background) into a uint8 image.

    The light sits just above and to the left of the camera, as in a portrait, so that eye
    sockets, nose and cheeks cast the shading a face detector expects; background is black.
    """
    hit = np.isfinite(depth_mm)
    if not hit.any():
        return np.zeros(depth_mm.shape, dtype=np.uint8)
    far = np.nanmax(depth_mm)
    smooth = ndi.gaussian_filter(np.where(hit, depth_mm, far), 1.0 / mm_per_pixel)
    d_row, d_col = np.gradient(smooth, mm_per_pixel)
    # Surface z = -depth(x, y) with x = col, y = -row; its normal toward the camera:
    normal = np.stack([d_col, -d_row, np.ones_like(smooth)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.array([-0.35, 0.45, 1.0])
    light /= np.linalg.norm(light)
    lambert = np.clip(normal @ light, 0.0, 1.0)
    grey = 0.12 + 0.88 * lambert
    return np.where(hit, np.round(grey * 255), 0).astype(np.uint8)


def render_views(
    image: ImageLike,
    views: tuple[str, ...] | list[str] = ALL_VIEWS,
    size: int = DEFAULT_SIZE,
    head_affine: np.ndarray | None = None,
    threshold: float | None = None,
    camera: tuple[np.ndarray, float] | None = None,
) -> HeadRenders:
    """Render the skin surface of a head from the named camera ``views``.

    ``image`` is any structural NIfTI in its scanner space; ``head_affine`` (4x4, RAS mm,
    maps the image's scanner space into e.g. atlas space) turns the head upright, only its
    rotation is used. ``threshold`` overrides the automatic skin threshold. Returns
    ``HeadRenders``: square ``size`` x ``size`` uint8 images, all at one scale, centred on the
    head's centroid; no views when the image has no head surface (see ``SkinThreshold``).
    ``camera`` (centroid, radius; ``HeadRenders.camera`` of another render) frames the views on
    that instead of this head's own: e.g. a reference head placed on an image's grid, seen by
    exactly the image's camera.
    """
    unknown = [name for name in views if name not in VIEWS]
    if unknown:
        raise ValueError(f"unknown view(s) {unknown}; known: {list(VIEWS)}")
    volume = _prepare(load(image), threshold)
    if camera is not None:
        volume = replace(volume, centre_world=np.asarray(camera[0], dtype=np.float64), radius_mm=float(camera[1]))
    rotation = rotation_of(head_affine)
    if not volume.skin.ok:
        return HeadRenders({}, {}, volume.skin, 0.0)
    rendered: dict[str, np.ndarray] = {}
    depths: dict[str, np.ndarray] = {}
    mm_per_pixel = STEP_MM
    for name in views:
        coarse = _cast(volume, VIEWS[name], rotation)
        mm_per_pixel = STEP_MM * coarse.shape[0] / size
        depths[name] = _upsample_depth(coarse, size)
        rendered[name] = shade(depths[name], mm_per_pixel)
    return HeadRenders(rendered, depths, volume.skin, mm_per_pixel, (volume.centre_world, volume.radius_mm))


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 grey (H, W) or RGB (H, W, 3) array as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


OVERLAY_COLOURS = ((255, 64, 64), (64, 200, 255), (255, 220, 0), (120, 255, 120))


def slice_plane(
    image: nib.spatialimages.SpatialImage,
    data: np.ndarray,
    centre_world: np.ndarray,
    axis_right: np.ndarray,
    axis_up: np.ndarray,
    half_width_mm: float,
    head_rotation: np.ndarray,
    order: int,
) -> np.ndarray:
    """Sample ``data`` (on ``image``'s grid) on a square 1 mm plane through ``centre_world``."""
    coords = plane_coordinates(image.affine, centre_world, axis_right, axis_up, half_width_mm, head_rotation)
    return ndi.map_coordinates(data, coords, order=order, cval=0.0, prefilter=False)


def plane_coordinates(
    affine: np.ndarray,
    centre_world: np.ndarray,
    axis_right: np.ndarray,
    axis_up: np.ndarray,
    half_width_mm: float,
    head_rotation: np.ndarray,
) -> np.ndarray:
    """Voxel coordinates (3, n, n) of the pixels of :func:`slice_plane`'s square plane."""
    n = int(np.ceil(2 * half_width_mm)) + 1
    columns = np.stack([-axis_up, axis_right], axis=1)
    origin = half_width_mm * (axis_up - axis_right)
    voxel_from_world = np.linalg.inv(affine)
    matrix = voxel_from_world[:3, :3] @ head_rotation.T @ columns
    offset = voxel_from_world[:3, :3] @ (centre_world + head_rotation.T @ origin) + voxel_from_world[:3, 3]
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float64)
    return np.einsum("ij,jrc->irc", matrix, np.stack([rows, cols])) + offset[:, None, None]


def render_slices(
    image: ImageLike,
    overlays: Mapping[str, ImageLike] | None = None,
    head_affine: np.ndarray | None = None,
    out: str | Path | None = None,
) -> dict[str, np.ndarray]:
    """Mid-sagittal and axial 1 mm slices of a head, masks drawn as coloured contours.

    ``image`` and each overlay (binary masks, any grid, their own scanner space) are resampled
    through their affines into the viewing frame (scanner RAS, or ``head_affine``'s rotation).
    The sagittal plane passes through the head's centroid; the axial plane through the first
    overlay's centroid (e.g. the face ROI) or else the head's. Returns {"sagittal", "axial"}
    RGB uint8 arrays (sagittal: face to the right; axial: seen from above, face up); with
    ``out`` a directory, also writes ``sagittal.png`` and ``axial.png`` there.
    """
    img = load(image)
    volume = _prepare(img)
    rotation = rotation_of(head_affine)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim > 3:
        data = data.reshape(data.shape[:3] + (-1,))[..., 0]
    masks = {name: load(mask) for name, mask in (overlays or {}).items()}
    centre = volume.centre_world.copy()
    if masks:
        first = next(iter(masks.values()))
        ijk = np.argwhere(np.asarray(first.dataobj) > 0)
        if ijk.size:
            centroid_view = rotation @ (ijk.mean(axis=0) @ first.affine[:3, :3].T + first.affine[:3, 3])
            axial_centre = rotation @ centre
            axial_centre[2] = centroid_view[2]
            centre_axial = rotation.T @ axial_centre
        else:
            centre_axial = centre
    else:
        centre_axial = centre
    half = max(volume.radius_mm, 60.0)
    e = np.eye(3)
    planes = {
        # Sagittal seen from the subject's right: anterior to the right of the picture.
        "sagittal": (centre, e[1], e[2]),
        # Axial seen from above: anterior up, so the subject's right is on the picture's right.
        "axial": (centre_axial, e[0], e[1]),
    }
    head = data[data > volume.skin.value]
    top = float(np.percentile(head, 99.5)) if head.size else float(data.max() or 1.0)
    pictures: dict[str, np.ndarray] = {}
    for plane, (through, axis_right, axis_up) in planes.items():
        grey = slice_plane(img, data, through, axis_right, axis_up, half, rotation, order=1)
        grey8 = np.clip(grey / max(top, 1e-6) * 255, 0, 255).astype(np.uint8)
        rgb = np.repeat(grey8[..., None], 3, axis=2)
        for index, (name, mask_img) in enumerate(masks.items()):
            mask_data = (np.asarray(mask_img.dataobj) > 0).astype(np.float32)
            plane_mask = slice_plane(mask_img, mask_data, through, axis_right, axis_up, half, rotation, order=0) > 0.5
            edge = plane_mask & ~ndi.binary_erosion(plane_mask)
            rgb[edge] = OVERLAY_COLOURS[index % len(OVERLAY_COLOURS)]
        pictures[plane] = rgb
        if out is not None:
            save_png(rgb, Path(out) / f"{plane}.png")
    return pictures
