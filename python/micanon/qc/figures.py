"""The figures of QC: an input seen once (its views and mid-sagittal slice), the slices of its
outputs cut on the same planes, and the outlines of the masks over them.

Slices are 1 mm planes in the viewing frame of :mod:`micanon.render` (scanner RAS turned by the
rotation of ``head_affine``), sagittal with the face to the right, axial seen from above with the
face up. An input with no head surface (a TOF angiogram) is shown as maximum intensity
projections instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.ndimage as ndi

from micanon import face, render
from micanon.io import read_image
from micanon.qc.seeing import Head, view_name

# Saves one picture under a name, returns its path as the record names it.
Figure = Callable[[str, np.ndarray], str]


@dataclass(frozen=True)
class Planes:
    """Where one input's slice figures are cut, and the intensity shown white (shared by its outputs)."""

    centre: np.ndarray  # scanner RAS mm: the head's centroid
    half_mm: float
    rotation: np.ndarray  # scanner -> viewing frame
    white: float
    # No head surface (a TOF angiogram: vessels in an empty field): a slice through it shows a few
    # dots, so its figures are maximum intensity projections instead, the radiologist's view.
    project: bool = False


def planes_of(head: Head, head_affine: np.ndarray | None) -> Planes:
    """The slice planes of ``head``: through its centroid, wide enough for the whole head."""
    data = np.asarray(head.nifti.dataobj)[::2, ::2, ::2]
    inside = data > head.renders.skin.value
    if not inside.any():
        inside = np.ones_like(data, dtype=bool)
    world = np.argwhere(inside) * 2 @ head.stored.affine[:3, :3].T + head.stored.affine[:3, 3]
    centre = world.mean(axis=0)
    half = max(float(np.percentile(np.linalg.norm(world - centre, axis=1), 99.5)) + render.PAD_MM, 60.0)
    white = float(np.percentile(data[inside], 99.5))
    return Planes(centre, half, render.rotation_of(head_affine), max(white, 1e-6), project=not head.has_surface)


def cut(planes: Planes, head: Head, volume: np.ndarray, order: int, plane: str, through: np.ndarray | None = None) -> np.ndarray:
    """One 1 mm plane of ``volume`` (on ``head``'s grid): "sagittal" (face to the right) or
    "axial" (seen from above, face up), as render.render_slices draws them."""
    e = np.eye(3)
    right, up = (e[1], e[2]) if plane == "sagittal" else (e[0], e[1])
    centre = planes.centre if through is None else through
    if planes.project:
        return _projection(head.stored.affine, volume, centre, right, up, planes)
    # render's plane sampler, with our centre and size, so the input and its outputs share one plane.
    return render.slice_plane(head.nifti, volume, centre, right, up, planes.half_mm, planes.rotation, order)


def _projection(affine: np.ndarray, volume: np.ndarray, centre, right, up, planes: Planes) -> np.ndarray:
    """Maximum intensity projection of ``volume`` along its voxel axis nearest the plane's normal,
    drawn on the plane's pixels (a mask projects to its silhouette)."""
    normal = planes.rotation.T @ np.cross(right, up)  # scanner direction seen through
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    axis = int(np.argmax(np.abs(normal @ directions)))
    projected = np.max(volume, axis=axis).astype(np.float32)
    coords = render.plane_coordinates(affine, centre, right, up, planes.half_mm, planes.rotation)
    kept = [a for a in range(3) if a != axis]
    return ndi.map_coordinates(projected, coords[kept], order=1, cval=0.0, prefilter=False)


def grey(planes: Planes, values: np.ndarray) -> np.ndarray:
    """A cut as an RGB picture, ``planes.white`` and above white."""
    grey_levels = np.clip(values / planes.white * 255, 0, 255).astype(np.uint8)
    return np.repeat(grey_levels[..., None], 3, axis=2)


def contours(picture: np.ndarray, planes: Planes, head: Head, masks: list[np.ndarray], plane: str, through=None) -> np.ndarray:
    """``picture`` with the outline of each mask (on ``head``'s grid) cut on the same plane, one colour each."""
    out = picture.copy()
    for index, mask in enumerate(masks):
        inside = cut(planes, head, mask.astype(np.float32), 0, plane, through) > 0.5
        out[inside & ~ndi.binary_erosion(inside)] = render.OVERLAY_COLOURS[index % len(render.OVERLAY_COLOURS)]
    return out


def _mask_centre(mask: np.ndarray, affine: np.ndarray, planes: Planes, default: np.ndarray) -> np.ndarray:
    """Scanner point at the head centre's left-right and front-back, at the mask centroid's height
    (viewing frame): the axial plane through the brain."""
    ijk = np.argwhere(mask[::2, ::2, ::2]) * 2
    if not ijk.size:
        return default
    centroid = planes.rotation @ (ijk.mean(axis=0) @ affine[:3, :3].T + affine[:3, 3])
    point = planes.rotation @ default
    point[2] = centroid[2]
    return planes.rotation.T @ point


@dataclass
class SeenImage:
    """An image as QC sees an input: its head, its slice planes and the figures written for it
    (paths as the ``figure`` callback returned them, relative to output_dir).

    ``views`` maps record view names to figures, ``slices`` holds ``input_sagittal``;
    ``overlays`` holds the mask figures per (brain guard, face ROI) pair of files.
    """

    head: Head
    planes: Planes
    sagittal: np.ndarray
    views: dict[str, str]
    slices: dict[str, str]
    overlays: dict[tuple, dict[str, str]] = field(default_factory=dict)

    def face_views(self) -> dict[str, list[str]]:
        """Record view name -> detectors that fired (every view searched by every detector)."""
        return self.head.fired()

    @property
    def surface(self) -> tuple[bool, str]:
        """(whether a head surface was found, why not when it was not)."""
        return self.head.has_surface, self.head.renders.skin.reason


def see_image(path: Path, head_affine: np.ndarray | None, figure: Figure, prefix: str) -> SeenImage:
    """Read one image, render it and search every view with every face detector, as QC does
    for an input; save its views and mid-sagittal slice through ``figure(name, picture) -> path``
    as ``<prefix>_<view>`` and ``<prefix>_sagittal``.

    The image is in its own scanner space; ``head_affine`` (scanner RAS -> atlas RAS) turns the
    renders upright (None: seen in the scanner frame).
    """
    head = Head(read_image(path), head_affine)
    # Every view is searched by both detectors: the deface check needs the CNN everywhere, the
    # identity check HOG first, and the report shows both.
    for view in head.renders.views:
        for detector in face.DETECTORS:
            head.detections(view, detector)
    views = {view_name(v): figure(f"{prefix}_{view_name(v)}", im) for v, im in head.renders.views.items()}
    planes = planes_of(head, head_affine)
    sagittal = grey(planes, cut(planes, head, np.asarray(head.nifti.dataobj), 1, "sagittal"))
    slices = {"input_sagittal": figure(f"{prefix}_sagittal", sagittal)}
    return SeenImage(head, planes, sagittal, views, slices)


def mask_figures(source: SeenImage, key: tuple, brain_guard: np.ndarray | None, face_roi: np.ndarray | None,
                 figure: Figure, stem: str) -> dict[str, str]:
    """masks_overlay and registration_overlay of an input, once per pair of mask files (``key``);
    the masks are on the input's grid (None: not available)."""
    if key not in source.overlays:
        head, planes = source.head, source.planes
        masks = [m for m in (brain_guard, face_roi) if m is not None]
        suffix = str(len(source.overlays) or "")  # a second pair of masks must not overwrite the first's figures
        figures = {}
        if masks:
            figures["masks_overlay"] = figure(f"{stem}_masks{suffix}", contours(source.sagittal, planes, head, masks, "sagittal"))
        if brain_guard is not None:
            # The guard is the atlas brain pulled onto this grid (grown 4 mm): its outline over the
            # brain, cut axially through its centre, shows how well the atlas was registered.
            through = _mask_centre(brain_guard, head.stored.affine, planes, planes.centre)
            axial = grey(planes, cut(planes, head, np.asarray(head.nifti.dataobj), 1, "axial", through))
            figures["registration_overlay"] = figure(
                f"{stem}_registration{suffix}", contours(axial, planes, head, [brain_guard], "axial", through)
            )
        source.overlays[key] = figures
    return source.overlays[key]


def output_sagittal(source: SeenImage, output_volume: np.ndarray) -> np.ndarray:
    """The output's own voxels (on the input's grid) cut on the input's planes: before and after
    show the same place."""
    return grey(source.planes, cut(source.planes, source.head, output_volume, 1, "sagittal"))
