#!/usr/bin/env python
"""Render the head atlas for review: each mask over the template, and 3D surface views.

    .venv/bin/python scripts/render_atlas.py [--atlas DIR] [--out docs/atlas]

Writes PNGs: ``masks.png`` (every mask over the template: mid-sagittal, sagittal through an eye,
axial through the eyes) and ``surface.png`` (front and 3/4 views of the template, the defaced
template and the refaced template). The surface views are a small ray cast written here on
purpose: it is a review tool for the atlas, independent of the product renderer
(micanon.render), so a bug there cannot hide a bad face ROI here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from micanon.atlas.load import default_atlas_dir, load_atlas  # noqa: E402

MASK_COLOURS = {
    "face_roi": (255, 60, 40),
    "brain": (60, 140, 255),
    "brain_neck": (60, 220, 90),
    "ears": (250, 200, 40),
    "face": (230, 80, 230),
}


def _grey(data: np.ndarray, top: float) -> np.ndarray:
    return np.clip(data / top * 255.0, 0, 255).astype(np.uint8)


def overlay(slice_data: np.ndarray, mask: np.ndarray | None, colour, top: float) -> np.ndarray:
    """RGB image of one slice (voxel axes: horizontal, vertical) with ``mask`` tinted, display-up."""
    grey = _grey(slice_data, top)
    rgb = np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
    if mask is not None:
        inside = mask > 0
        rgb[inside] = 0.55 * rgb[inside] + 0.45 * np.asarray(colour, np.float32)
        edge = inside & ~ndimage.binary_erosion(inside)
        rgb[edge] = colour
    return np.rot90(rgb.astype(np.uint8))


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(panel))
    ImageDraw.Draw(image).text((4, 3), text, fill=(255, 255, 0))
    return np.asarray(image)


def _row(panels: list[np.ndarray], gap: int = 3) -> np.ndarray:
    height = max(p.shape[0] for p in panels)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, gap), (0, 0)), constant_values=40) for p in panels]
    return np.concatenate(padded, axis=1)


def _column(rows: list[np.ndarray], gap: int = 3) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=40) for r in rows]
    return np.concatenate(padded, axis=0)


def slice_indices(brain: np.ndarray) -> tuple[int, int, int]:
    """(axial through the eyes, mid-sagittal, sagittal through the left eye) voxel indices.

    The orbits sit level with the lowest part of the frontal lobes, about a third of the way up
    the brain mask (which reaches down into the brainstem); the eye's sagittal plane is ~32 mm
    off the midline.
    """
    voxels = np.argwhere(brain)
    k_low, k_high = voxels[:, 2].min(), voxels[:, 2].max()
    i_mid = int(round(voxels[:, 0].mean()))
    return int(k_low + 0.33 * (k_high - k_low)), i_mid, max(0, i_mid - 32)


def render_masks(atlas, out: Path) -> Path:
    """Each mask over the template in three slices; returns the PNG path."""
    template = np.asanyarray(nib.load(atlas.template).dataobj).astype(np.float32)
    top = float(np.percentile(template[template > 0], 99.5))
    masks = {role: np.asanyarray(nib.load(getattr(atlas, role)).dataobj) for role in MASK_COLOURS if getattr(atlas, role)}
    k_eye, i_mid, i_eye = slice_indices(masks["brain"])
    rows = []
    for role, mask in masks.items():
        if role == "face":
            mask = mask > 0
        panels = [
            overlay(template[i_mid], mask[i_mid], MASK_COLOURS[role], top),
            overlay(template[i_eye], mask[i_eye], MASK_COLOURS[role], top),
            overlay(template[:, :, k_eye], mask[:, :, k_eye], MASK_COLOURS[role], top),
        ]
        rows.append(_label(_row(panels), role))
    path = out / "masks.png"
    _save(_column(rows), path, scale=0.6)
    return path


# ----------------------------------------------------------------------------- surface views


def _resample_view(volume: np.ndarray, affine: np.ndarray, azimuth_deg: float, size_mm: float = 240.0, step_mm: float = 1.0) -> np.ndarray:
    """``volume`` resampled on a camera-aligned grid (i: right, j: toward the camera, k: up).

    The camera looks at the head centre from the front, turned ``azimuth_deg`` to the head's
    left about the vertical axis. Returns a (n, n, n) float32 array, 1 mm steps.
    """
    n = int(size_mm / step_mm)
    centre = affine[:3, :3] @ (np.asarray(volume.shape) / 2.0) + affine[:3, 3]
    theta = np.deg2rad(azimuth_deg)
    right = np.array([np.cos(theta), np.sin(theta), 0.0])
    toward = np.array([-np.sin(theta), np.cos(theta), 0.0])
    up = np.array([0.0, 0.0, 1.0])
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3] = np.stack([right, toward, up], axis=1) * step_mm
    camera_to_world[:3, 3] = centre - camera_to_world[:3, :3] @ np.full(3, n / 2.0)
    camera_to_voxel = np.linalg.inv(affine) @ camera_to_world
    return ndimage.affine_transform(
        volume, camera_to_voxel[:3, :3], camera_to_voxel[:3, 3], output_shape=(n, n, n), order=1, cval=0.0
    ).astype(np.float32)


def surface_view(volume: np.ndarray, affine: np.ndarray, threshold: float, azimuth_deg: float) -> np.ndarray:
    """Grey image of the first surface above ``threshold`` seen from the front/3-4 view.

    Depth is found per ray (first sample above threshold, looking along -j of the camera grid)
    and shaded by its gradient (Lambert, light from the camera and above).
    """
    cube = _resample_view(volume, affine, azimuth_deg)
    hit = cube > threshold
    # Rays enter from the camera side: high j first.
    from_front = hit[:, ::-1, :]
    any_hit = from_front.any(axis=1)
    depth = np.argmax(from_front, axis=1).astype(np.float32)
    depth[~any_hit] = np.nan
    depth = ndimage.gaussian_filter(np.nan_to_num(depth, nan=cube.shape[1]), 0.7)
    dz_di, dz_dk = np.gradient(depth)
    normal = np.stack([dz_di, np.ones_like(depth), dz_dk], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.array([0.3, 1.0, -0.4])
    light /= np.linalg.norm(light)
    shade = np.clip(normal @ light, 0, 1) * 0.85 + 0.15
    shade[~any_hit] = 0
    return np.rot90((shade * 255).astype(np.uint8))


def render_surfaces(atlas, out: Path) -> Path:
    """Front and 3/4 surface views of template, defaced and refaced template; returns the PNG path."""
    template_img = nib.load(atlas.template)
    template = np.asanyarray(template_img.dataobj).astype(np.float32)
    face_roi = np.asanyarray(nib.load(atlas.face_roi).dataobj) > 0
    brain_neck = np.asanyarray(nib.load(atlas.brain_neck).dataobj) > 0
    face = np.asanyarray(nib.load(atlas.face).dataobj).astype(np.float32)
    threshold = 0.15 * float(np.percentile(template[template > 0], 99))
    heads = {
        "template": template,
        "defaced": np.where(face_roi, 0, template),
        "refaced": np.where(brain_neck, template, face),
    }
    rows = []
    for name, head in heads.items():
        views = [surface_view(head, template_img.affine, threshold, az) for az in (0.0, 40.0)]
        rows.append(_label(_row([np.repeat(v[..., None], 3, axis=-1) for v in views]), name))
    path = out / "surface.png"
    _save(_column(rows), path, scale=0.8)
    return path


def _save(rgb: np.ndarray, path: Path, scale: float) -> None:
    """Write ``rgb`` scaled by ``scale`` as a palette PNG (keeps the docs images small)."""
    image = Image.fromarray(np.ascontiguousarray(rgb))
    image = image.resize((int(image.width * scale), int(image.height * scale)), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    """Render the atlas views; prints the PNG paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", type=Path, default=None, help="atlas folder (default: the built default atlas)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "atlas", help="folder for the PNGs")
    args = parser.parse_args(argv)
    atlas = load_atlas(args.atlas or default_atlas_dir())
    for path in (render_masks(atlas, args.out), render_surfaces(atlas, args.out)):
        print(f"{path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
