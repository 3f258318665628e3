"""Face detection and identity on renders: shipped models, then person A (skipped where absent)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import face_recognition_models
from micanon import face, render

REPO = Path(__file__).resolve().parents[2]


def _person_a() -> Path:
    root = Path(os.environ.get("MICANON_SHARED_DATA", REPO.parent / "shared" / "data"))
    return root if (root / "sub-A").is_dir() else root / "bids-person-a"


PERSON_A = _person_a()
T1W = PERSON_A / "sub-A" / "ses-01" / "anat" / "sub-A_ses-01_T1w.nii.gz"
PYDEFACE_WHEEL = Path(os.environ.get("MICANON_PYDEFACE_WHEEL", "/tmp/wh/pydeface-2.1.0-py3-none-any.whl"))

needs_person_a = pytest.mark.skipif(not T1W.is_file(), reason=f"person A's data not found at {PERSON_A} (licence: not in repo)")
needs_pydeface = pytest.mark.skipif(not PYDEFACE_WHEEL.is_file(), reason=f"pydeface wheel not found at {PYDEFACE_WHEEL}")


def test_models_load_from_the_installed_package():
    for path in (
        face_recognition_models.cnn_face_detector_model_location(),
        face_recognition_models.pose_predictor_five_point_model_location(),
        face_recognition_models.face_recognition_model_location(),
    ):
        assert Path(path).is_file() and Path(path).stat().st_size > 100_000
    face.load_models()


def test_no_face_in_a_blank_or_noise_image():
    assert face.detect(np.zeros((320, 320), dtype=np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 255, (320, 320)).astype(np.uint8)
    assert face.detect(noise, face.DEFACE_CHECK_DETECTORS) == []


def test_paired_distance_takes_the_nearer_of_the_input_box_and_the_own_box():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (160, 160)).astype(np.uint8)
    box = face.Detection("cnn", (30, 30, 130, 130), 0.5)
    own = face.Detection("hog", (20, 25, 120, 125), 0.5)
    reference = face.descriptor(image, box)
    assert face.paired_distance(reference, image, box, []) == (pytest.approx(0.0, abs=1e-9), "input box")
    shifted = face.descriptor(image, own)
    distance, which = face.paired_distance(shifted, image, box, [own])
    assert which == "own hog box" and distance == pytest.approx(0.0, abs=1e-9)


def plane_cut(img: nib.Nifti1Image, behind_nose_mm: float = 35.0) -> nib.Nifti1Image:
    """Test scaffolding, not a defacer: zero the scanner-space block anterior to a coronal
    plane ``behind_nose_mm`` behind the nose tip, below the brows (eyes and nose removed)."""
    data = np.asarray(img.dataobj, dtype=np.float32).copy()
    ijk = np.indices(data.shape).reshape(3, -1)
    ras = img.affine[:3, :3] @ ijk + img.affine[:3, 3:4]
    skin = render.pick_skin_threshold(data, img.header.get_zooms()[:3]).value
    head = data.ravel() > skin
    tip = np.argmax(np.where(head, ras[1], -np.inf))
    cut = (ras[1] > ras[1, tip] - behind_nose_mm) & (ras[2] < ras[2, tip] + 45.0)
    data.reshape(-1)[cut] = 0
    return nib.Nifti1Image(data, img.affine)


def tilted(img: nib.Nifti1Image, degrees: float) -> nib.Nifti1Image:
    """The same voxels with the head pitched ``degrees`` in scanner space (header rotation)."""
    a = np.deg2rad(degrees)
    rot = np.eye(4)
    rot[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return nib.Nifti1Image(np.asarray(img.dataobj), rot @ img.affine)


def faces_by_view(views: dict[str, np.ndarray], detectors=face.DETECTORS) -> dict[str, list]:
    return {name: face.detect(image, detectors) for name, image in views.items()}


@pytest.fixture(scope="module")
def person_a_views():
    return render.render_views(T1W).views


@pytest.fixture(scope="module")
def average_head(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pydeface")
    with zipfile.ZipFile(PYDEFACE_WHEEL) as wheel:
        for name in ("mean_reg2mean.nii.gz", "facemask.nii.gz"):
            (folder / name).write_bytes(wheel.read(f"pydeface/data/{name}"))
    return nib.load(folder / "mean_reg2mean.nii.gz"), nib.load(folder / "facemask.nii.gz")


@needs_person_a
def test_person_a_face_found_and_gone_after_a_plane_cut(person_a_views):
    intact = faces_by_view(person_a_views)
    assert any(intact.values()), "no detector sees person A's face in any view"
    defaced = faces_by_view(render.render_views(plane_cut(nib.load(T1W))).views, face.DEFACE_CHECK_DETECTORS)
    assert not any(defaced.values()), defaced


@needs_person_a
@needs_pydeface
def test_person_a_rotated_is_same_person_and_average_head_is_not(average_head):
    """QC's own identity rule (qc.identity_check), all heads seen in the scanner frame."""
    from micanon import qc
    from micanon.io import read_image

    def head(img: nib.Nifti1Image, tmp: Path) -> "qc.Head":
        img.to_filename(str(tmp))
        return qc.Head(read_image(tmp), None)

    folder = Path(average_head[0].get_filename()).parent
    mine = qc.Head(read_image(T1W), None)
    check, rotated = qc.identity_check(mine, head(tilted(nib.load(T1W), 4.0), folder / "a_tilted.nii.gz"))
    assert rotated["views_compared"] >= 1 and check["verdict"] == "fail", rotated  # fail: still the same person
    check, other = qc.identity_check(mine, head(average_head[0], folder / "average.nii.gz"))
    assert other["views_compared"] >= 1 and check["verdict"] == "pass", other


@needs_pydeface
def test_cnn_sees_the_average_face_but_not_after_its_face_mask(average_head):
    mean, facemask = average_head
    intact = faces_by_view(render.render_views(mean).views, face.DEFACE_CHECK_DETECTORS)
    assert sum(bool(found) for found in intact.values()) >= 3, intact
    kept = np.asarray(facemask.dataobj) > 0.5
    defaced = nib.Nifti1Image(np.asarray(mean.dataobj, dtype=np.float32) * kept, mean.affine)
    after = faces_by_view(render.render_views(defaced).views, face.DEFACE_CHECK_DETECTORS)
    assert not any(after.values()), after
