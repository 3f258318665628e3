"""The head atlas: built from pinned wheels, masks that keep the brain and cover the face.

The atlas is built once per module (or the default atlas is used when it is already built by
this builder version and intact). Checks read the images themselves: landmarks such as the nose
tip and chin are found from the template, distances are measured in mm.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from conftest import person_a_anat
from micanon.atlas import build as atlas_build
from micanon.atlas.load import MICAPIPE_FILES, AtlasError, default_atlas_dir, load_atlas
from micanon.atlas.sources import load_lock, sha256_file

PYTHON_DIR = Path(__file__).resolve().parents[1]


def run_builder(out: Path, *extra: str) -> subprocess.CompletedProcess:
    """Run the builder as setup does (a fresh interpreter), failing the test on error."""
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, "-m", "micanon.atlas.build", "--out", str(out), *extra],
        capture_output=True, text=True, env=env, check=False,
    )
    assert done.returncode == 0, f"atlas build failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def atlas_dir(tmp_path_factory) -> Path:
    """A built atlas: the default one if built by this builder and intact, else built fresh."""
    default = default_atlas_dir()
    if atlas_build.manifest_matches(default, load_lock()):
        return default
    out = tmp_path_factory.mktemp("atlas") / atlas_build.ATLAS_NAME
    run_builder(out)
    return out


@pytest.fixture(scope="module")
def images(atlas_dir):
    """Every role's voxels (atlas grid) and the grid's affine."""
    atlas = load_atlas(atlas_dir)
    loaded = {role: nib.load(getattr(atlas, role)) for role in ("template", "face_roi", "brain", "brain_neck", "face", "ears")}
    data = {role: np.asanyarray(img.dataobj) for role, img in loaded.items()}
    return data, loaded["template"].affine, loaded


@pytest.fixture(scope="module")
def template_head(images) -> np.ndarray:
    """The template's head mask (the builder's definition of "head"), atlas grid."""
    return atlas_build.head_mask(images[0]["template"])


def zooms(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((affine[:3, :3] ** 2).sum(axis=0))


def world(affine: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    return voxels @ affine[:3, :3].T + affine[:3, 3]


# ----------------------------------------------------------------------------- build


def test_masks_are_binary_uint8_on_the_template_grid_ras(images):
    data, affine, loaded = images
    assert "".join(nib.aff2axcodes(affine)) == "RAS"
    for role in ("face_roi", "brain", "brain_neck", "ears"):
        assert data[role].dtype == np.uint8, role
        assert set(np.unique(data[role]).tolist()) == {0, 1}, role
    for role, img in loaded.items():
        assert img.shape == data["template"].shape, role
        np.testing.assert_allclose(img.affine, affine, atol=1e-6, err_msg=role)
        np.testing.assert_allclose(img.header.get_qform(), img.header.get_sform(), atol=1e-6, err_msg=role)
        assert int(img.header["qform_code"]) > 0 and int(img.header["sform_code"]) > 0, role


def test_face_roi_stays_at_least_5mm_from_the_brain(images):
    data, affine, _ = images
    brain = data["brain"] > 0
    assert brain.sum() * np.prod(zooms(affine)) > 1.0e6, "brain mask smaller than 1 litre"
    to_brain = ndimage.distance_transform_edt(~brain, sampling=zooms(affine))
    closest = float(to_brain[data["face_roi"] > 0].min())
    assert closest >= 5.0, f"face ROI comes within {closest:.2f} mm of the brain"
    assert float(to_brain[data["ears"] > 0].min()) >= 5.0


def test_brain_neck_and_face_roi_partition_the_head(images, template_head):
    data, _, _ = images
    face, keep, head = data["face_roi"] > 0, data["brain_neck"] > 0, template_head
    assert not (face & keep).any(), "a voxel is both face and brain_neck"
    uncovered = head & ~face & ~keep
    assert not uncovered.any(), f"{int(uncovered.sum())} head voxels are neither face nor brain_neck"
    assert ((data["brain"] > 0) <= keep).all(), "brain voxels outside brain_neck"


def test_face_roi_covers_the_nose_tip_and_chin(images, template_head):
    data, affine, _ = images
    head = template_head
    # Head surface voxels, in world mm (RAS): the template is already RAS.
    surface = np.argwhere(head & ~ndimage.binary_erosion(head))
    points = world(affine, surface.astype(float))
    nose_tip = surface[np.argmax(points[:, 1])]  # most anterior point of the head
    chin = surface[np.argmax(points[:, 1] - points[:, 2])]  # most anterior-inferior point
    assert data["face_roi"][tuple(nose_tip)] == 1, f"nose tip {nose_tip} not in the face ROI"
    assert data["face_roi"][tuple(chin)] == 1, f"chin {chin} not in the face ROI"
    # And the whole front of the face: every most-anterior surface voxel per axial slice between
    # the chin and 45 mm above the nose tip (eye level) is in the ROI.
    z_low, z_high = world(affine, chin[None].astype(float))[0, 2], world(affine, nose_tip[None].astype(float))[0, 2] + 45
    band = (points[:, 2] >= z_low) & (points[:, 2] <= z_high)
    missed = 0
    for k in np.unique(surface[band, 2]):
        in_slice = band & (surface[:, 2] == k)
        front = surface[in_slice][np.argmax(points[in_slice, 1])]
        missed += int(data["face_roi"][tuple(front)] == 0)
    assert missed == 0, f"{missed} axial slices keep their most anterior face voxel"


def test_face_image_is_the_template_inside_the_face_roi(images, template_head):
    data, _, _ = images
    inside_head = template_head & (data["face_roi"] > 0)
    np.testing.assert_array_equal(data["face"][inside_head], data["template"][inside_head])
    assert not data["face"][data["brain"] > 0].any(), "the pasted face reaches the brain"


def test_manifest_names_sources_and_matches_every_file(atlas_dir):
    manifest = json.loads((atlas_dir / atlas_build.MANIFEST).read_text())
    assert manifest["builder_version"] == atlas_build.BUILDER_VERSION
    assert manifest["brain_margin_mm"] == 5.0
    for name, wheel in load_lock().items():
        assert manifest["sources"][name]["sha256"] == wheel.sha256
        assert manifest["sources"][name]["licence"]
    assert set(manifest["outputs"]) == set(atlas_build.FILES)
    for entry in manifest["outputs"].values():
        assert sha256_file(atlas_dir / entry["file"]) == entry["sha256"], entry["file"]


def test_written_gzip_has_no_timestamp(atlas_dir):
    for name in atlas_build.FILES.values():
        header = (atlas_dir / name).read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0", f"{name}: gzip mtime set"


def test_second_run_sees_the_manifest_and_returns_at_once(atlas_dir):
    before = {p.name: p.stat().st_mtime_ns for p in atlas_dir.iterdir()}
    started = time.monotonic()
    assert atlas_build.build(atlas_dir, log=lambda msg: None) == "up-to-date"
    assert time.monotonic() - started < 10.0
    assert {p.name: p.stat().st_mtime_ns for p in atlas_dir.iterdir()} == before


def test_rebuild_is_byte_identical(atlas_dir, tmp_path):
    again = tmp_path / "again"
    run_builder(again, "--force")
    for name in [*atlas_build.FILES.values(), atlas_build.MANIFEST]:
        assert (again / name).read_bytes() == (atlas_dir / name).read_bytes(), f"{name} differs on rebuild"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".again.")], "staging folder left behind"


def test_a_corrupted_output_triggers_a_rebuild(atlas_dir, tmp_path):
    copy = tmp_path / "atlas"
    shutil.copytree(atlas_dir, copy)
    assert atlas_build.manifest_matches(copy, load_lock())
    with open(copy / atlas_build.FILES["ears"], "ab") as stream:
        stream.write(b"\0")
    assert not atlas_build.manifest_matches(copy, load_lock())


# ----------------------------------------------------------------------------- load


def linked_copy(src: Path, dest: Path, rename: dict[str, str] | None = None) -> Path:
    """``dest`` holding symlinks to the files of ``src`` (optionally renamed)."""
    dest.mkdir()
    for path in src.iterdir():
        if path.is_file():
            (dest / (rename or {}).get(path.name, path.name)).symlink_to(path)
    return dest


def write_like(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    img = nib.Nifti1Image(data, affine)
    path.unlink(missing_ok=True)
    path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=1))


def test_load_atlas_returns_every_role(atlas_dir):
    atlas = load_atlas(atlas_dir)
    assert atlas.kind == "micanon"
    assert atlas.face_roi.name == atlas_build.FILES["face_roi"]
    assert atlas.ears is not None and atlas.ears.is_file()
    assert atlas.manifest["name"] == atlas_build.ATLAS_NAME


def test_load_atlas_rejects_a_missing_file(atlas_dir, tmp_path):
    broken = linked_copy(atlas_dir, tmp_path / "broken")
    (broken / atlas_build.FILES["brain_neck"]).unlink()
    with pytest.raises(AtlasError, match=r"tpl-micanon_desc-brainNeck_mask\.nii\.gz: missing"):
        load_atlas(broken)


def test_load_atlas_rejects_a_mask_on_another_grid(atlas_dir, tmp_path, images):
    _, affine, _ = images
    broken = linked_copy(atlas_dir, tmp_path / "broken")
    write_like(broken / atlas_build.FILES["brain"], np.zeros((10, 10, 10), np.uint8), affine)
    with pytest.raises(AtlasError, match=r"tpl-micanon_desc-brain_mask\.nii\.gz: grid \(10, 10, 10\) differs"):
        load_atlas(broken)
    shifted = affine.copy()
    shifted[:3, 3] += 2.0
    write_like(broken / atlas_build.FILES["brain"], np.asanyarray(images[0]["brain"]), shifted)
    with pytest.raises(AtlasError, match=r"tpl-micanon_desc-brain_mask\.nii\.gz: affine differs"):
        load_atlas(broken)


def test_load_atlas_rejects_a_non_binary_mask(atlas_dir, tmp_path, images):
    data, affine, _ = images
    broken = linked_copy(atlas_dir, tmp_path / "broken")
    write_like(broken / atlas_build.FILES["face_roi"], (data["face_roi"] * 255).astype(np.uint8), affine)
    with pytest.raises(AtlasError, match=r"tpl-micanon_desc-face_mask\.nii\.gz: mask is not binary \(values 0, 255\)"):
        load_atlas(broken)


def test_load_atlas_rejects_a_folder_without_template(tmp_path):
    with pytest.raises(AtlasError, match="no atlas template"):
        load_atlas(tmp_path)
    with pytest.raises(AtlasError, match="atlas folder not found"):
        load_atlas(tmp_path / "nowhere")


def test_load_atlas_accepts_micapipe_names(atlas_dir, tmp_path):
    rename = {atlas_build.FILES[role]: names[0] for role, names in MICAPIPE_FILES.items() if role != "ears"}
    micapipe = linked_copy(atlas_dir, tmp_path / "MICs60_T1-atlas", rename)
    (micapipe / atlas_build.FILES["ears"]).unlink()
    (micapipe / atlas_build.MANIFEST).unlink()
    atlas = load_atlas(micapipe)
    assert atlas.kind == "micapipe"
    assert atlas.template.name == "MICs60_T1_0.8mm.nii.gz"
    assert atlas.face_roi.name == "MICs60_T1_0.8mm_mask-defaceROI.nii.gz"
    assert atlas.brain_neck.name == "MICs60_T1_0.8mm_mask-brainNeck.nii.gz"
    assert atlas.ears is None and atlas.manifest is None


def test_default_atlas_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MICANON_ATLAS", str(tmp_path))
    assert default_atlas_dir() == tmp_path
    monkeypatch.delenv("MICANON_ATLAS")
    assert default_atlas_dir().parts[-2:] == (".atlas", atlas_build.ATLAS_NAME)


# ----------------------------------------------------------------------------- person A


def test_person_a_face_roi_pulled_back_covers_the_face_and_spares_the_brain(images, template_head):
    anat = person_a_anat()
    from micanon.space.registration import register_to_atlas

    data, atlas_affine, _ = images
    t1w_img = nib.load(anat / "sub-A_ses-01_T1w.nii.gz")
    t1w = np.asanyarray(t1w_img.dataobj).astype(np.float32)
    template = data["template"].astype(np.float32)
    fit = register_to_atlas(t1w, t1w_img.affine, template, atlas_affine, template_head, seed=1)
    native_to_atlas_voxel = np.linalg.inv(atlas_affine) @ fit.native_to_atlas @ t1w_img.affine

    def pull_back(mask: np.ndarray) -> np.ndarray:
        return ndimage.affine_transform(
            mask, native_to_atlas_voxel[:3, :3], native_to_atlas_voxel[:3, 3], output_shape=t1w.shape, order=0
        ) > 0

    face, brain = pull_back(data["face_roi"]), pull_back(data["brain"])
    assert brain.sum() * np.prod(zooms(t1w_img.affine)) > 1.0e6
    assert not (face & brain).any(), "pulled-back face ROI overlaps the pulled-back brain"

    # Person A's own head surface; at eye and nose level (between the atlas nose tip and 45 mm
    # above it, mapped into native space) the most anterior surface voxel of every axial slice
    # must be in the face ROI.
    head = atlas_build.largest_component(t1w > 0.15 * np.percentile(t1w[t1w > 0], 99))
    head = ndimage.binary_fill_holes(head)
    surface = np.argwhere(head & ~ndimage.binary_erosion(head))
    points = world(t1w_img.affine, surface.astype(float))
    atlas_surface = np.argwhere(template_head & ~ndimage.binary_erosion(template_head))
    nose_tip_atlas = world(atlas_affine, atlas_surface[np.argmax(world(atlas_affine, atlas_surface.astype(float))[:, 1])][None].astype(float))[0]
    atlas_to_native = np.linalg.inv(fit.native_to_atlas)
    z_nose = (atlas_to_native @ np.r_[nose_tip_atlas, 1.0])[2]
    z_eyes = (atlas_to_native @ np.r_[nose_tip_atlas + [0, 0, 45.0], 1.0])[2]
    band = (points[:, 2] >= max(z_nose, points[:, 2].min() + 3)) & (points[:, 2] <= z_eyes)
    slices = np.unique(surface[band, 2])
    assert slices.size > 20, "no eye/nose level found in person A"
    missed = [int(k) for k in slices if not face[tuple(surface[band & (surface[:, 2] == k)][np.argmax(points[band & (surface[:, 2] == k), 1])])]]
    assert not missed, f"most anterior face voxel kept in axial slices {missed}"
