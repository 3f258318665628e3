"""Find and validate a head atlas folder: ours (micanon) or micapipe's MICs60 files.

Every role is a NIfTI image on the template's grid (template voxel space, its own world mm).
:func:`load_atlas` checks that each file is present, readable, on that grid and, for masks,
binary; anything wrong raises :class:`AtlasError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np

from micanon.atlas.build import ATLAS_NAME, FILES, MANIFEST

# micapipe's names (MICs60_T1-atlas folder); "defaceROI" is 1 on the face, "brainNeck" 1 on what stays.
MICAPIPE_FILES = {
    "template": ("MICs60_T1_0.8mm.nii.gz",),
    "face_roi": ("MICs60_T1_0.8mm_mask-defaceROI.nii.gz",),
    "brain": ("MICs60_T1_0.8mm_mask.nii.gz", "MICs60_T1_0.8mm_brain_mask.nii.gz"),
    "brain_neck": ("MICs60_T1_0.8mm_mask-brainNeck.nii.gz",),
    "face": ("MICs60_T1_0.8mm_face.nii.gz",),
    "ears": ("MICs60_T1_0.8mm_mask-ears.nii.gz",),
}
REQUIRED_ROLES = ("template", "face_roi", "brain", "brain_neck", "face")
MASK_ROLES = ("face_roi", "brain", "brain_neck", "ears")
# Grids agree when the affines differ by less than this (mm / unitless): float32 header noise.
AFFINE_TOLERANCE = 1e-3


class AtlasError(ValueError):
    """An atlas folder is incomplete or inconsistent; the message names the file and the fault."""


@dataclass(frozen=True)
class Atlas:
    """A validated atlas: one path per role, all on the template's grid."""

    template: Path
    face_roi: Path
    brain: Path
    brain_neck: Path
    face: Path
    kind: Literal["micanon", "micapipe"]
    ears: Path | None = None
    manifest: dict | None = field(default=None, compare=False)


def default_atlas_dir() -> Path:
    """``$MICANON_ATLAS``, else ``<repo>/.atlas/micanon-head-v1`` (where ``npm run setup`` builds it)."""
    if os.environ.get("MICANON_ATLAS"):
        return Path(os.environ["MICANON_ATLAS"])
    repo = Path(__file__).resolve().parents[3]
    return repo / ".atlas" / ATLAS_NAME


def _find_roles(folder: Path) -> tuple[str, dict[str, Path]]:
    """Which naming the folder uses and the path of each role found in it."""
    if (folder / FILES["template"]).is_file():
        return "micanon", {role: folder / name for role, name in FILES.items() if (folder / name).is_file()}
    if (folder / MICAPIPE_FILES["template"][0]).is_file():
        found = {}
        for role, names in MICAPIPE_FILES.items():
            for name in names:
                if (folder / name).is_file():
                    found[role] = folder / name
                    break
        return "micapipe", found
    raise AtlasError(
        f"{folder}: no atlas template here (expected {FILES['template']} or {MICAPIPE_FILES['template'][0]}); "
        "build one with `python -m micanon.atlas.build --out DIR`"
    )


def _expected_name(kind: str, role: str) -> str:
    return FILES[role] if kind == "micanon" else MICAPIPE_FILES[role][0]


def _header(path: Path) -> nib.Nifti1Image:
    try:
        return nib.load(path)
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise AtlasError(f"{path}: not a readable NIfTI image ({exc})") from exc


def _check_binary(path: Path, img: nib.Nifti1Image) -> None:
    data = np.asanyarray(img.dataobj)
    # min/max is one pass; np.unique (a sort) only runs to word the error.
    if data.size and (data.min() >= 0 and data.max() <= 1) and (data.dtype.kind in "iub" or np.all((data == 0) | (data == 1))):
        return
    values = np.unique(data)
    shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if values.size > 5 else "")
    raise AtlasError(f"{path}: mask is not binary (values {shown}); masks must hold only 0 and 1")


def load_atlas(path: str | os.PathLike[str]) -> Atlas:
    """The atlas in folder ``path``, validated (present, same grid as the template, masks 0/1).

    Accepts our file names (``tpl-micanon_*``, with ``manifest.json``) or micapipe's
    (``MICs60_T1_0.8mm*``). Raises :class:`AtlasError` naming the first file at fault.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise AtlasError(f"{folder}: atlas folder not found")
    kind, roles = _find_roles(folder)
    for role in REQUIRED_ROLES:
        if role not in roles:
            raise AtlasError(f"{folder / _expected_name(kind, role)}: missing ({role} of the {kind} atlas)")

    template = _header(roles["template"])
    if len(template.shape) != 3:
        raise AtlasError(f"{roles['template']}: template must be 3D, has shape {template.shape}")
    for role, role_path in roles.items():
        if role == "template":
            continue
        img = _header(role_path)
        if img.shape != template.shape:
            raise AtlasError(f"{role_path}: grid {img.shape} differs from the template's {template.shape}")
        if not np.allclose(img.affine, template.affine, atol=AFFINE_TOLERANCE):
            raise AtlasError(f"{role_path}: affine differs from the template's (not on the template grid)")
        if role in MASK_ROLES:
            _check_binary(role_path, img)

    manifest = None
    if kind == "micanon" and (folder / MANIFEST).is_file():
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise AtlasError(f"{folder / MANIFEST}: not valid JSON ({exc})") from exc
    return Atlas(
        template=roles["template"],
        face_roi=roles["face_roi"],
        brain=roles["brain"],
        brain_neck=roles["brain_neck"],
        face=roles["face"],
        ears=roles.get("ears"),
        kind=kind,  # type: ignore[arg-type]
        manifest=manifest,
    )
