"""Shared fixtures: a small synthetic head made in code, an atlas of the same head moved by a
known affine, and the path of the real person-A dataset (tests needing it skip without it).

The head is analytic (ellipsoids in world mm), so the subject image and the atlas are drawn
from one function at different points and their masks are exact: a test can say where the
brain and the face truly are without trusting the code under test.
"""

from __future__ import annotations

import os
import tempfile
import types
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
# The same head gives the same ROBEX brain: extract it once for the whole suite (see native_brain.CACHE_VAR).
os.environ.setdefault("MICANON_NATIVE_BRAIN_CACHE", os.path.join(tempfile.gettempdir(), "micanon-test-native-brain"))

# Atlas space = this rotation/translation/scale applied to the subject's scanner space.
ATLAS_FROM_SUBJECT_DEG = 8.0
ATLAS_FROM_SUBJECT_SHIFT = np.array([6.0, -9.0, 12.0])
ATLAS_FROM_SUBJECT_SCALE = 1.04


def atlas_from_subject() -> np.ndarray:
    """4x4 RAS matrix: subject scanner point -> the same anatomical point in the atlas."""
    a = np.deg2rad(ATLAS_FROM_SUBJECT_DEG)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])  # pitch
    out = np.eye(4)
    out[:3, :3] = rot * ATLAS_FROM_SUBJECT_SCALE
    out[:3, 3] = ATLAS_FROM_SUBJECT_SHIFT
    return out


def _inside(p: np.ndarray, centre, radii) -> np.ndarray:
    return (((p - np.asarray(centre)) / np.asarray(radii)) ** 2).sum(-1) <= 1.0


def head_parts(points: np.ndarray, nose_mm: float = 22.0) -> dict[str, np.ndarray]:
    """Boolean parts of the analytic head at world points (..., 3), in head-centred mm.

    Brain ellipsoid at the centre, CSF, skull and skin shells around it, a neck below, two eyes
    and a nose ``nose_mm`` long in front (+y), a chin below the face.
    """
    p = points
    brain = _inside(p, (0, 0, 10), (55, 70, 55))
    csf = _inside(p, (0, 0, 10), (59, 74, 59))
    skull = _inside(p, (0, 0, 10), (65, 80, 65))
    scalp = _inside(p, (0, 0, 10), (71, 86, 71))
    neck = _inside(p, (0, -10, -80), (45, 45, 70)) & (p[..., 2] < -20)
    jaw = _inside(p, (0, 45, -45), (50, 45, 40))
    nose = _inside(p, (0, 86, -25), (9, nose_mm, 14))
    eyes = _inside(p, (-28, 68, -8), (11, 11, 11)) | _inside(p, (28, 68, -8), (11, 11, 11))
    head = scalp | neck | jaw | nose
    ventricle = _inside(p, (12, 5, 18), (8, 22, 8))  # off-centre: no mirror or rotation symmetry
    return {"brain": brain & ~ventricle, "ventricle": ventricle, "csf": csf & ~brain & ~ventricle,
            "skull": skull & ~csf, "head": head, "eyes": eyes & ~skull, "nose": nose & ~scalp}


def head_intensity(points: np.ndarray, nose_mm: float = 22.0) -> np.ndarray:
    """T1w-like intensities of the analytic head (0 = air)."""
    parts = head_parts(points, nose_mm)
    value = np.where(parts["head"], 80.0, 0.0)
    value[parts["skull"]] = 25.0
    value[parts["csf"]] = 15.0
    value[parts["brain"]] = 60.0
    wm = _inside(points, (0, 0, 10), (40, 55, 40)) & parts["brain"]
    value[wm] = 95.0
    value[parts["ventricle"]] = 12.0
    value[parts["eyes"]] = 35.0
    return value


def grid_points(shape, affine) -> np.ndarray:
    """World points (x, y, z, 3) of every voxel centre of a grid."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def subject_grid(voxel: float = 3.0, fov=(180, 240, 255)):
    """A subject scanner grid: RAS voxels centred near the head, neck included."""
    shape = tuple(int(round(f / voxel)) for f in fov)
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = [-fov[0] / 2, -fov[1] / 2 + 15, -150]
    return shape, affine


def make_subject(voxel: float = 3.0, seed: int = 0, nose_mm: float = 22.0):
    """Subject T1w (float32, scanner space) with its exact brain and face parts."""
    shape, affine = subject_grid(voxel)
    pts = grid_points(shape, affine)
    rng = np.random.default_rng(seed)
    data = head_intensity(pts, nose_mm) + rng.normal(0, 2.0, shape)
    data = np.clip(data, 0, None).astype(np.float32)
    return data, affine, head_parts(pts, nose_mm)


def ears_of(points: np.ndarray) -> np.ndarray:
    """Ears ROI in head-centred mm: a box on each side of the head, from 5 mm off the brain out."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return (np.abs(x) > 60) & (np.abs(y) < 15) & (np.abs(z) < 15)


def face_roi_of(points: np.ndarray) -> np.ndarray:
    """Face ROI in head-centred mm: front and below the eyebrows, >= 5 mm from the brain."""
    front = (points[..., 1] > 50) & (points[..., 2] < 12)
    brain_far = ~_inside(points, (0, 0, 10), (62, 77, 62))
    return front & brain_far


def write_atlas(folder: Path, voxel: float = 2.0, nose_mm: float = 32.0) -> types.SimpleNamespace:
    """Write the synthetic atlas (head moved by ``atlas_from_subject``, bigger nose) to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = (100, 130, 140)
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = [-100, -110, -170]
    atlas_pts = grid_points(shape, affine)
    to_subject = np.linalg.inv(atlas_from_subject())
    head_pts = atlas_pts @ to_subject[:3, :3].T + to_subject[:3, 3]
    template = head_intensity(head_pts, nose_mm).astype(np.float32)
    parts = head_parts(head_pts, nose_mm)
    face_roi = face_roi_of(head_pts)
    roles = {
        "template": template,
        "face_roi": face_roi.astype(np.uint8),
        "brain": parts["brain"] | parts["ventricle"],
        "brain_neck": (parts["head"] & ~face_roi).astype(np.uint8),
        "face": np.where(face_roi & parts["head"], template, 0).astype(np.float32),
        "ears": ears_of(head_pts) & ~face_roi,
    }
    names = {"template": "tpl-micanon_T1w.nii.gz", "face_roi": "tpl-micanon_desc-face_mask.nii.gz",
             "brain": "tpl-micanon_desc-brain_mask.nii.gz", "brain_neck": "tpl-micanon_desc-brainNeck_mask.nii.gz",
             "face": "tpl-micanon_desc-face_T1w.nii.gz", "ears": "tpl-micanon_desc-ears_mask.nii.gz"}
    paths = {}
    for role, data in roles.items():
        data = np.asarray(data)
        data = data.astype(np.uint8) if data.dtype == bool else data
        img = nib.Nifti1Image(data, affine)
        img.set_qform(affine, 1)
        img.set_sform(affine, 1)
        paths[role] = folder / names[role]
        nib.save(img, paths[role])
    return types.SimpleNamespace(**paths, affine=affine)


def save_subject(path: Path, data: np.ndarray, affine: np.ndarray, dtype=np.float32) -> Path:
    """Write a subject image with nibabel (qform/sform code 1) stored as ``dtype``.

    For integer dtypes nibabel picks scl_slope/scl_inter to fit the float data, which gives a
    scaled file made independently of the code under test.
    """
    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    img.set_data_dtype(dtype)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    img.to_filename(str(path))
    return path


@pytest.fixture(scope="session")
def synthetic_atlas(tmp_path_factory) -> types.SimpleNamespace:
    """The synthetic atlas folder (roles as Path attributes), shared by the whole test run."""
    return write_atlas(tmp_path_factory.mktemp("atlas"))


@pytest.fixture(scope="session")
def synthetic_subject():
    """(data, affine, parts) of the synthetic subject head on a 3 mm grid."""
    return make_subject()


def person_a_dir() -> Path:
    """The person-A BIDS dataset: $MICANON_SHARED_DATA/bids-person-a or <repo>/../shared/data/bids-person-a."""
    base = os.environ.get("MICANON_SHARED_DATA")
    root = Path(base) if base else REPO.parent / "shared" / "data"
    return root / "bids-person-a"


def person_a_anat() -> Path:
    """Folder of person A's anatomical images; skips the calling test where it is absent."""
    anat = person_a_dir() / "sub-A" / "ses-01" / "anat"
    if not (anat / "sub-A_ses-01_T1w.nii.gz").exists():
        pytest.skip(f"person-A data not found at {anat} (set MICANON_SHARED_DATA to the shared data folder)")
    return anat


def real_atlas():
    """The built micanon atlas ($MICANON_ATLAS or <repo>/.atlas/micanon-head-v1); skips where absent."""
    folder = Path(os.environ.get("MICANON_ATLAS") or REPO / ".atlas" / "micanon-head-v1")
    if not (folder / "manifest.json").exists():
        pytest.skip(f"no built atlas at {folder} (run `npm run setup`)")
    from micanon.atlas.load import load_atlas

    return load_atlas(folder)
