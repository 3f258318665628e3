"""Build the micanon head atlas from pinned registry wheels.

    python -m micanon.atlas.build --out DIR [--cache DIR] [--force]

Every image is on one grid: pydeface's full-head average T1w (``mean_reg2mean``), kept voxel for
voxel (RAS+, ~1 mm, slightly oblique) and padded with air in front of the face, below the chin
and beside the ears, so that ROIs drawn there reach subjects whose faces stick out further than
the average after an affine fit. World coordinates below are that template's own (mm, RAS).

Masks:
- brain: the skull-stripped MNI152 2009a T1w (nilearn) support pulled onto the template grid
  through a pinned affine (``BRAIN_AFFINE``, found once with ANTsPy by ``--refit-brain``).
- face ROI: everything anterior-inferior of a plane behind the eyes, nose, mouth and chin, below
  the brows, air included, joined with pydeface's own face mask, minus every voxel within
  ``BRAIN_MARGIN_MM`` of the brain (Euclidean distance in mm): the margin holds by construction.
- ears: boxes around each pinna from the skull outward, minus the brain margin and the face.
- brain_neck: the head (skin surface filled) grown ``HEAD_GROWTH_MM`` into the air, minus the
  face ROI. Face ROI and brain_neck never overlap and together cover the head.

A second run with the same inputs finds the manifest checksums matching and returns at once.
Outputs are byte-identical between runs: numpy/scipy only at build time, gzip mtime 0. (ANTs
affine fits differ run to run even single-threaded with a fixed seed, and some diverge, hence the
pinned affine and the fit check, ``MIN_BRAIN_FIT_NCC``, that stops a build if it ever stops fitting.)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from micanon.atlas.sources import (
    LOCK_PATH,
    SourceError,
    Wheel,
    default_cache_dir,
    fetch_wheel,
    load_lock,
    read_member,
    sha256_file,
)

ATLAS_NAME = "micanon-head-v1"
# Bump whenever any output could change (geometry, parameters, pins).
BUILDER_VERSION = "1.0.0"

FILES = {
    "template": "tpl-micanon_T1w.nii.gz",
    "face_roi": "tpl-micanon_desc-face_mask.nii.gz",
    "brain": "tpl-micanon_desc-brain_mask.nii.gz",
    "brain_neck": "tpl-micanon_desc-brainNeck_mask.nii.gz",
    "face": "tpl-micanon_desc-face_T1w.nii.gz",
    "ears": "tpl-micanon_desc-ears_mask.nii.gz",
}
MANIFEST = "manifest.json"

TEMPLATE_MEMBER = ("pydeface", "pydeface/data/mean_reg2mean.nii.gz")
PYDEFACE_MASK_MEMBER = ("pydeface", "pydeface/data/facemask.nii.gz")
MNI_T1_MEMBER = ("nilearn", "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")

# Voxels of air added on each side of the source grid: (left, right), (posterior, anterior),
# (inferior, superior). The source grid ends ~16 mm in front of the nose tip and just below the
# chin; ears touch its left/right edges.
PADDING = ((12, 12), (0, 24), (24, 0))

BRAIN_MARGIN_MM = 5.0
# How far brain_neck reaches into the air beyond the template's skin: heads larger than the
# average keep their scalp after an affine fit.
HEAD_GROWTH_MM = 15.0
# The pasted face (desc-face_T1w) extends this far past the face ROI so that reface can blend.
FACE_BLEND_MM = 3.0

# Face plane, in the template's world (mm): in the sagittal plane it runs through
# (y, z) = (67, -10) (behind the eyeballs, level with the brows) and (43, -123) (behind the chin,
# below the grid's original floor); everything anterior of it and below FACE_TOP_Z is face.
FACE_PLANE_TOP = (67.0, -10.0)
FACE_PLANE_BOTTOM = (43.0, -123.0)
# Brow level plus ~8 mm for subjects whose eyes sit higher after the affine fit: the eyebrows are
# in, the forehead stays (the brain margin trims the ROI where the frontal lobe comes close).
FACE_TOP_Z = 4.0

# Pinna centres (x, y, z) found on the template, and the box around each: half sizes along y and
# z; along x from EAR_INNER_MM inside the centre out to the grid edge.
EAR_CENTRES = ((-83.5, -6.5, -39.0), (71.0, -14.5, -40.5))
EAR_HALF_Y_MM = 32.0
EAR_HALF_Z_MM = 38.0
EAR_INNER_MM = 22.0

# MNI152 world -> template world (RAS mm, rows of a 4x4 without the last), found by
# ``--refit-brain`` (ANTsPy Affine, mattes, 2 mm, metric inside the MNI brain, best NCC of 8 seeds)
# and checked by eye. Pinned because ANTs affine fits are not reproducible run to run.
BRAIN_AFFINE = (
    (0.8825, 0.066, 0.0105, -4.2184),
    (-0.063, 0.8994, -0.1314, 15.7135),
    (-0.0121, 0.1097, 0.8116, -2.385),
)
# A build stops when the pinned affine fits worse than this (the pinned one scores ~0.63; an
# affine scaled by 8 % scores ~0.44).
MIN_BRAIN_FIT_NCC = 0.55
REGISTRATION_VOXEL_MM = 2.0
GZIP_LEVEL = 6


class BuildError(RuntimeError):
    """The atlas could not be built (the message says which step and why)."""


@dataclass(frozen=True)
class Grid:
    """The atlas voxel grid: shape and voxel-to-world (RAS mm) affine."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def zooms(self) -> tuple[float, float, float]:
        """Voxel size (mm) along the three voxel axes."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]

    def world_axis(self, axis: int) -> np.ndarray:
        """World coordinate ``axis`` (0 x, 1 y, 2 z; mm) of every voxel centre, float32."""
        row = self.affine[axis].astype(np.float64)
        i, j, k = (np.arange(n, dtype=np.float64) for n in self.shape)
        return (
            row[0] * i[:, None, None] + row[1] * j[None, :, None] + row[2] * k[None, None, :] + row[3]
        ).astype(np.float32)


# ----------------------------------------------------------------------------- reading inputs


def _image_from_gz(data: bytes) -> nib.Nifti1Image:
    """A NIfTI image from the bytes of a .nii.gz wheel member (held in memory)."""
    return nib.Nifti1Image.from_bytes(gzip.decompress(data))


def _canonical(img: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    """Stored values and affine of ``img`` reoriented to RAS+ (a flip/permute, no resampling)."""
    ras = nib.as_closest_canonical(img)
    return np.asarray(ras.dataobj), ras.affine


def pad(data: np.ndarray, affine: np.ndarray, padding=PADDING, value=0) -> tuple[np.ndarray, np.ndarray]:
    """``data`` padded with ``value`` and the affine of the padded grid (same world positions)."""
    padded = np.pad(data, padding, mode="constant", constant_values=value)
    shift = np.eye(4)
    shift[:3, 3] = [-before for before, _ in padding]
    return padded, affine @ shift


# ----------------------------------------------------------------------------- masks


def head_mask(template: np.ndarray) -> np.ndarray:
    """Robust head mask of the template: tissue above 15 % of the 99th percentile, one piece.

    An opening first cuts the average's thin ringing lines in the air in front of the eyes loose
    from the face; closing and hole filling then give a solid head.
    """
    values = template[template > 0]
    threshold = 0.15 * float(np.percentile(values, 99))
    mask = largest_component(ndimage.binary_opening(template > threshold, iterations=2))
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2))
    # Sinuses and airways open to the outside through the nose: close them slice by slice.
    for axis in range(3):
        mask = np.stack([ndimage.binary_fill_holes(s) for s in np.moveaxis(mask, axis, 0)], axis=axis)
    return mask


def extrude_neck(head: np.ndarray, inferior_padding: int, above_floor: int = 3) -> np.ndarray:
    """``head`` with its cross-section near the source grid's floor repeated down through the padding.

    The average head ends at the floor of its field of view (the neck is cut); subjects' necks go
    on, and brain_neck must keep them.
    """
    extruded = head.copy()
    section = head[:, :, inferior_padding + above_floor]
    extruded[:, :, : inferior_padding + above_floor] = section[:, :, None]
    return extruded


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of a boolean mask."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def distance_mm(mask: np.ndarray, grid: Grid, reach_mm: float) -> np.ndarray:
    """Euclidean distance (mm) from every voxel to the nearest voxel of ``mask`` (0 inside).

    Only distances up to ``reach_mm`` are exact; farther voxels may read ``inf``. The transform
    runs on the mask's bounding box grown by ``reach_mm``, several times cheaper than the grid.
    """
    found = np.argwhere(mask)
    distance = np.full(grid.shape, np.inf, np.float32)
    if found.size == 0:
        return distance
    grow = np.ceil(reach_mm / np.asarray(grid.zooms)).astype(int) + 1
    low = np.maximum(found.min(axis=0) - grow, 0)
    high = np.minimum(found.max(axis=0) + grow + 1, grid.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    distance[box] = ndimage.distance_transform_edt(~mask[box], sampling=grid.zooms)
    return distance


def face_region(grid: Grid) -> np.ndarray:
    """Geometric face region (before the brain margin): anterior-inferior of the face plane."""
    (y_top, z_top), (y_bottom, z_bottom) = FACE_PLANE_TOP, FACE_PLANE_BOTTOM
    y = grid.world_axis(1)
    z = grid.world_axis(2)
    plane_y = y_bottom + (z - z_bottom) * ((y_top - y_bottom) / (z_top - z_bottom))
    return (y > plane_y) & (z < FACE_TOP_Z)


def ears_region(grid: Grid) -> np.ndarray:
    """Geometric ear boxes (before the brain margin): around each pinna, from the skull out."""
    x, y, z = (grid.world_axis(a) for a in range(3))
    region = np.zeros(grid.shape, bool)
    for cx, cy, cz in EAR_CENTRES:
        outward = (x - cx) * np.sign(cx) > -EAR_INNER_MM  # from EAR_INNER_MM medial of the centre out
        region |= outward & (np.abs(y - cy) < EAR_HALF_Y_MM) & (np.abs(z - cz) < EAR_HALF_Z_MM)
    return region


def brain_mask(template: np.ndarray, grid: Grid, mni: np.ndarray, mni_affine: np.ndarray) -> np.ndarray:
    """Brain mask on the atlas grid: the MNI brain (T1w > 0) pulled through ``BRAIN_AFFINE``.

    ``mni`` is the skull-stripped MNI152 2009a T1w on its own grid (RAS). Resampling is linear,
    then thresholded at 0.5: numpy only, so rebuilds are byte-identical.
    """
    template_to_mni_voxel = np.linalg.inv(mni_affine) @ np.linalg.inv(brain_affine()) @ grid.affine
    support = ndimage.affine_transform(
        (mni > 0).astype(np.float32),
        template_to_mni_voxel[:3, :3],
        template_to_mni_voxel[:3, 3],
        output_shape=grid.shape,
        order=1,
        cval=0.0,
    )
    brain = ndimage.binary_fill_holes(largest_component(support >= 0.5))
    fit = brain_fit_ncc(template, grid, mni, mni_affine, brain_affine())
    if fit < MIN_BRAIN_FIT_NCC:
        raise BuildError(f"MNI brain fits the template poorly (NCC {fit:.3f} < {MIN_BRAIN_FIT_NCC})")
    return brain


def brain_affine() -> np.ndarray:
    """``BRAIN_AFFINE`` as a 4x4 matrix: MNI152 world (RAS mm) -> template world (RAS mm)."""
    return np.vstack([np.asarray(BRAIN_AFFINE, np.float64), [0.0, 0.0, 0.0, 1.0]])


def brain_fit_ncc(template: np.ndarray, grid: Grid, mni: np.ndarray, mni_affine: np.ndarray, mni_to_template: np.ndarray) -> float:
    """Normalised correlation of MNI T1w and template inside the MNI brain, for a candidate affine.

    The template is sampled at MNI voxel centres (MNI grid); 1 is a perfect linear match.
    """
    mni_to_template_voxel = np.linalg.inv(grid.affine) @ mni_to_template @ mni_affine
    step = 2  # every other MNI voxel: plenty for a score, 8x cheaper
    sub = np.diag([step, step, step, 1.0])
    matrix = mni_to_template_voxel @ sub
    coarse = mni[::step, ::step, ::step].astype(np.float32)
    moved = ndimage.affine_transform(
        template.astype(np.float32), matrix[:3, :3], matrix[:3, 3], output_shape=coarse.shape, order=1
    )
    inside = coarse > 0
    a = coarse[inside] - coarse[inside].mean()
    b = moved[inside] - moved[inside].mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def refit_brain_affine(template: np.ndarray, grid: Grid, mni: np.ndarray, mni_affine: np.ndarray, seeds=range(1, 9)) -> tuple[float, np.ndarray]:
    """Maintainer tool: fit MNI -> template affinely with ANTsPy; best (NCC, 4x4 RAS matrix).

    Not used by builds. ANTs affine fits of a skull-stripped brain into a full head vary with
    the seed (some runs scale the brain to the skull), so several seeds run and the best NCC
    wins; its matrix is what ``BRAIN_AFFINE`` pins.
    """
    import ants

    def to_ants(data: np.ndarray, affine: np.ndarray):
        img = ants.from_numpy(data.astype(np.float32))
        flip = np.diag([-1.0, -1.0, 1.0])  # ITK is LPS
        zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        img.set_spacing(tuple(zooms))
        img.set_origin(tuple(flip @ affine[:3, 3]))
        img.set_direction(flip @ affine[:3, :3] / zooms)
        return img

    spacing = (REGISTRATION_VOXEL_MM,) * 3
    fixed = ants.resample_image(to_ants(mni, mni_affine), spacing, False, 0)
    moving = ants.resample_image(to_ants(template, grid.affine), spacing, False, 0)
    best = (-np.inf, np.eye(4))
    for seed in seeds:
        fit = ants.registration(
            fixed=fixed, moving=moving, type_of_transform="Affine", aff_metric="mattes",
            mask=ants.threshold_image(fixed, 1e-3, 1e9), mask_all_stages=True, random_seed=seed,
        )
        transform = ants.read_transform(fit["fwdtransforms"][0])
        params = np.asarray(transform.parameters, np.float64)
        centre = np.asarray(transform.fixed_parameters, np.float64)
        matrix = params[:9].reshape(3, 3)
        lps = np.eye(4)
        lps[:3, :3] = matrix
        lps[:3, 3] = params[9:] + centre - matrix @ centre
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        ras = flip @ lps @ flip
        score = brain_fit_ncc(template, grid, mni, mni_affine, ras)
        if score > best[0]:
            best = (score, ras)
    return best


# ----------------------------------------------------------------------------- writing


def nifti_bytes(data: np.ndarray, grid: Grid, description: str) -> bytes:
    """Gzipped NIfTI-1 bytes of ``data`` on ``grid`` (qform = sform, code 1, gzip mtime 0)."""
    img = nib.Nifti1Image(data, None)
    img.set_qform(grid.affine, code=1)
    # The sform is the qform as stored (float32 quaternion), so the two agree exactly.
    img.set_sform(img.get_qform(), code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = description.encode("ascii")[:79]
    return gzip.compress(img.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0)


def _write(path: Path, payload: bytes) -> str:
    path.write_bytes(payload)
    return sha256_file(path)


def manifest_matches(out: Path, lock: dict[str, Wheel]) -> bool:
    """True when ``out`` holds a build by this builder from these pins, every file intact."""
    manifest_path = out / MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("builder_version") != BUILDER_VERSION:
        return False
    pinned = {name: wheel.sha256 for name, wheel in lock.items()}
    if {name: src.get("sha256") for name, src in manifest.get("sources", {}).items()} != pinned:
        return False
    outputs = manifest.get("outputs", {})
    if set(outputs) != set(FILES):
        return False
    return all(
        (out / entry["file"]).is_file() and sha256_file(out / entry["file"]) == entry["sha256"]
        for entry in outputs.values()
    )


# ----------------------------------------------------------------------------- build


@dataclass(frozen=True)
class Inputs:
    """The pinned source images, on the atlas grid where they belong to it."""

    template: np.ndarray  # stored values of the template, padded (atlas grid)
    grid: Grid
    pydeface_face: np.ndarray  # bool, pydeface's face region (atlas grid)
    mni: np.ndarray  # skull-stripped MNI152 2009a T1w (its own grid, RAS)
    mni_affine: np.ndarray


def load_inputs(lock: dict[str, Wheel], cache: Path) -> Inputs:
    """Fetch the pinned wheels (cache first), check them, and read the source images."""
    wheel_paths = {name: fetch_wheel(wheel, cache) for name, wheel in lock.items()}

    def member(ref: tuple[str, str]) -> bytes:
        name, path = ref
        return read_member(lock[name], wheel_paths[name], path)

    source_img = _image_from_gz(member(TEMPLATE_MEMBER))
    template_raw, source_affine = _canonical(source_img)
    template, affine = pad(template_raw, source_affine)
    grid = Grid(shape=template.shape, affine=affine)

    pyd_mask_raw, pyd_affine = _canonical(_image_from_gz(member(PYDEFACE_MASK_MEMBER)))
    if pyd_mask_raw.shape != template_raw.shape or not np.allclose(pyd_affine, source_affine, atol=1e-4):
        raise BuildError("pydeface facemask is not on the template grid")
    pydeface_face, _ = pad(np.asarray(pyd_mask_raw) < 0.5, source_affine, value=False)

    mni, mni_affine = _canonical(_image_from_gz(member(MNI_T1_MEMBER)))
    return Inputs(
        template=template.astype(source_img.get_data_dtype()),
        grid=grid,
        pydeface_face=pydeface_face,
        mni=mni,
        mni_affine=mni_affine,
    )


def build_into(folder: Path, lock: dict[str, Wheel], cache: Path, log=print) -> dict:
    """Build every atlas file into ``folder`` (must exist, empty). Returns the manifest dict."""
    started = time.monotonic()
    inputs = load_inputs(lock, cache)
    template_data, grid, pydeface_face = inputs.template, inputs.grid, inputs.pydeface_face
    mni, mni_affine = inputs.mni, inputs.mni_affine
    log(f"template: {grid.shape} voxels of {np.round(grid.zooms, 4).tolist()} mm")
    brain = brain_mask(template_data, grid, mni, mni_affine)
    log(f"brain mask: {int(brain.sum())} voxels ({time.monotonic() - started:.1f} s)")

    head = extrude_neck(head_mask(template_data), PADDING[2][0])
    allowed = distance_mm(brain, grid, BRAIN_MARGIN_MM) > BRAIN_MARGIN_MM
    face_roi = largest_component((face_region(grid) | pydeface_face) & allowed)
    ears = ears_region(grid) & allowed & ~face_roi
    to_head = distance_mm(head, grid, HEAD_GROWTH_MM)
    brain_neck = (to_head <= HEAD_GROWTH_MM) & ~face_roi
    # The pasted face is the template near the face ROI, without the average's ringing in the air.
    face_blend = (distance_mm(face_roi, grid, FACE_BLEND_MM) <= FACE_BLEND_MM) & (to_head <= FACE_BLEND_MM)
    face_t1w = np.where(face_blend, template_data, 0).astype(template_data.dtype)
    log(f"masks: face {int(face_roi.sum())}, ears {int(ears.sum())}, brain_neck {int(brain_neck.sum())} voxels")

    images = {
        "template": (template_data, "micanon head template T1w"),
        "face_roi": (face_roi.astype(np.uint8), "micanon face ROI"),
        "brain": (brain.astype(np.uint8), "micanon brain mask"),
        "brain_neck": (brain_neck.astype(np.uint8), "micanon brain+neck mask"),
        "face": (face_t1w, "micanon face T1w"),
        "ears": (ears.astype(np.uint8), "micanon ears ROI"),
    }
    outputs = {}
    for role, (data, description) in images.items():
        digest = _write(folder / FILES[role], nifti_bytes(data, grid, description))
        outputs[role] = {"file": FILES[role], "sha256": digest, "dtype": str(data.dtype)}

    manifest = {
        "name": ATLAS_NAME,
        "builder": "micanon.atlas.build",
        "builder_version": BUILDER_VERSION,
        "space": "pydeface mean_reg2mean world (RAS mm), padded with air",
        "grid": {
            "shape": list(grid.shape),
            "affine": np.round(grid.affine, 6).tolist(),
            "voxel_mm": [round(v, 6) for v in grid.zooms],
            "orientation": "".join(nib.aff2axcodes(grid.affine)),
            "padding_voxels": [list(p) for p in PADDING],
        },
        "sources": {
            name: {
                "version": wheel.version,
                "wheel": wheel.filename,
                "sha256": wheel.sha256,
                "licence": wheel.licence,
                "members": {path: spec["sha256"] for path, spec in wheel.members.items()},
            }
            for name, wheel in lock.items()
        },
        "masks": {
            "brain": (
                "MNI152 2009a skull-stripped T1w (nilearn) support (> 0) pulled onto the template grid through "
                "the pinned affine brain_affine_mni_to_template (found with ANTsPy Affine, mattes, "
                f"{REGISTRATION_VOXEL_MM} mm, metric inside the MNI brain, best NCC of 8 seeds), linear, "
                ">= 0.5, largest component, holes filled"
            ),
            "face_roi": (
                f"anterior-inferior of the sagittal plane through (y,z)={FACE_PLANE_TOP} and {FACE_PLANE_BOTTOM} "
                f"mm, below z={FACE_TOP_Z} mm, air included, union pydeface facemask==0, minus every voxel "
                f"within {BRAIN_MARGIN_MM} mm of the brain mask, largest component"
            ),
            "ears": (
                f"boxes around pinna centres {EAR_CENTRES} mm (|dy|<{EAR_HALF_Y_MM}, |dz|<{EAR_HALF_Z_MM}, "
                f"from {EAR_INNER_MM} mm medial of the centre outward), minus the brain margin and the face ROI"
            ),
            "brain_neck": (
                f"head mask (template > 15% of its 99th percentile, closed, filled) grown {HEAD_GROWTH_MM} mm "
                "into the air, minus the face ROI; outside it and outside the face ROI is far air"
            ),
            "face": f"template intensities within {FACE_BLEND_MM} mm of the face ROI, 0 elsewhere",
        },
        "brain_affine_mni_to_template": [list(row) for row in BRAIN_AFFINE],
        "brain_fit_ncc": round(brain_fit_ncc(template_data, grid, mni, mni_affine, brain_affine()), 4),
        "brain_margin_mm": BRAIN_MARGIN_MM,
        "head_growth_mm": HEAD_GROWTH_MM,
        "face_blend_mm": FACE_BLEND_MM,
        "voxels": {role: int(np.count_nonzero(data)) for role, (data, _) in images.items() if role != "template"},
        "outputs": outputs,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    log(f"built in {time.monotonic() - started:.1f} s")
    return manifest


def build(out: Path, cache: Path | None = None, force: bool = False, log=print) -> str:
    """Build the atlas into ``out`` atomically; returns ``"up-to-date"`` or ``"built"``.

    The files are written into a temporary folder beside ``out`` and renamed into place, so a
    reader never sees a half-built atlas.
    """
    out = Path(out).resolve()
    lock = load_lock()
    if not force and manifest_matches(out, lock):
        log(f"atlas up to date: {out}")
        return "up-to-date"
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the atlas is for every user of the checkout
    try:
        build_into(staging, lock, Path(cache) if cache else default_cache_dir(), log=log)
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, retired / out.name)
            os.replace(staging, out)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log(f"atlas written: {out}")
    return "built"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of the builder."""
    parser = argparse.ArgumentParser(prog="python -m micanon.atlas.build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="atlas folder to write (replaced atomically)")
    parser.add_argument("--cache", type=Path, default=None, help=f"wheel cache (default {default_cache_dir()})")
    parser.add_argument("--force", action="store_true", help="rebuild even when the manifest matches")
    parser.add_argument(
        "--refit-brain", action="store_true",
        help="maintainers: re-run the MNI -> template registration and print the affine to pin (builds nothing)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 when the atlas is built or up to date, 1 on a build error."""
    args = parse_args(argv)
    try:
        if args.refit_brain:
            inputs = load_inputs(load_lock(), args.cache or default_cache_dir())
            score, matrix = refit_brain_affine(inputs.template, inputs.grid, inputs.mni, inputs.mni_affine)
            pinned = brain_fit_ncc(inputs.template, inputs.grid, inputs.mni, inputs.mni_affine, brain_affine())
            print(f"best refit NCC {score:.4f} (pinned {pinned:.4f}); BRAIN_AFFINE = {np.round(matrix[:3], 4).tolist()}")
            return 0
        build(args.out, args.cache, args.force)
    except (BuildError, SourceError) as exc:
        print(f"atlas build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
