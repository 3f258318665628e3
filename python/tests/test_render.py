"""Surface renders and slices of a synthetic head built in code (no real data needed)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image

from micanon import render

VOXEL_MM = 2.0
SHAPE = (100, 120, 120)
CENTRE_MM = np.array([0.0, 0.0, 0.0])
NOSE_TIP_MM = np.array([0.0, 102.0, -15.0])  # RAS: in front of the face, a little below centre


def _grid_mm(shape=SHAPE, voxel=VOXEL_MM):
    ijk = np.indices(shape, dtype=np.float32)
    return [(ijk[axis] - (shape[axis] - 1) / 2) * voxel for axis in range(3)]


def synthetic_head(skin=120.0, inside=80.0, air=4.0, seed=0) -> np.ndarray:
    """An ellipsoid head (70 x 90 x 100 mm radii) with a nose bump ending at NOSE_TIP_MM."""
    x, y, z = _grid_mm()
    head = (x / 70) ** 2 + (y / 90) ** 2 + (z / 100) ** 2 <= 1
    nose = (x / 12) ** 2 + ((y - 87) / 15) ** 2 + ((z - NOSE_TIP_MM[2]) / 20) ** 2 <= 1
    shell = head & ~ndi.binary_erosion(head, iterations=3)
    data = np.full(SHAPE, air, dtype=np.float32)
    data[head | nose] = inside
    data[shell | nose] = skin
    data += np.random.default_rng(seed).normal(0, 2.0, SHAPE).astype(np.float32)
    return data


def centred_affine(shape=SHAPE, voxel=VOXEL_MM) -> np.ndarray:
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * voxel
    return affine


def rotation_x(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    rot = np.eye(4)
    rot[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return rot


@pytest.fixture(scope="module")
def head_image() -> nib.Nifti1Image:
    return nib.Nifti1Image(synthetic_head(), centred_affine())


@pytest.fixture(scope="module")
def upright(head_image) -> render.HeadRenders:
    return render.render_views(head_image, size=200)


def expected_pixel(renders: render.HeadRenders, point_mm: np.ndarray, view: str, head_centre: np.ndarray):
    """(row, col) at which a point of the viewing frame appears in a view's image."""
    right, up, _ = render.camera_axes(render.VIEWS[view])
    size = renders.views[view].shape[0]
    offset = point_mm - head_centre
    return (size / 2 - offset @ up / renders.mm_per_pixel, size / 2 + offset @ right / renders.mm_per_pixel)


def test_every_view_shows_a_surface(upright):
    assert upright.skin.ok
    assert set(upright.views) == set(render.ALL_VIEWS)
    for name, image in upright.views.items():
        assert image.dtype == np.uint8 and image.shape == (200, 200)
        hit = np.isfinite(upright.depth_mm[name])
        assert 0.2 < hit.mean() < 0.9, name
        assert image[hit].mean() > 60 and image[~hit].max() == 0, name


def test_nose_is_nearest_point_of_front_view(upright):
    depth = upright.depth_mm["front"]
    row, col = np.unravel_index(np.nanargmin(depth), depth.shape)
    # The head centroid (where the view is centred) sits on x = 0, slightly in front of y = 0.
    centre = np.array([0.0, 0.0, 0.0])
    exp_row, exp_col = expected_pixel(upright, NOSE_TIP_MM, "front", centre)
    assert abs(col - exp_col) <= 3
    assert abs(row - exp_row) <= 6  # the centroid is pulled a little toward the nose
    # And nothing in the front view is nearer than the nose tip by construction.
    assert np.nanmin(depth) < np.nanpercentile(depth, 5) - 5


@pytest.mark.parametrize("view, nose_side", [("left90", "left"), ("right90", "right")])
def test_nose_sticks_out_on_the_correct_side_of_the_profile(upright, view, nose_side):
    hit = np.isfinite(upright.depth_mm[view])
    size = hit.shape[0]
    exp_row, _ = expected_pixel(upright, NOSE_TIP_MM, view, np.zeros(3))
    row = hit[int(round(exp_row))]
    cols = np.nonzero(row)[0]
    left_extent, right_extent = size / 2 - cols.min(), cols.max() - size / 2
    # The face (nose) extends ~12 mm further from the centre than the back of the head.
    if nose_side == "left":
        assert left_extent - right_extent > 8 / upright.mm_per_pixel
    else:
        assert right_extent - left_extent > 8 / upright.mm_per_pixel


def test_tilted_head_rendered_with_its_head_affine_matches_upright(head_image, upright):
    tilt = rotation_x(20.0)  # head pitched 20 deg in the scanner (a header rotation)
    tilted = nib.Nifti1Image(np.asarray(head_image.dataobj), tilt @ head_image.affine)
    corrected = render.render_views(tilted, views=("front", "left90"), size=200, head_affine=np.linalg.inv(tilt))
    naive = render.render_views(tilted, views=("front", "left90"), size=200)
    for name in ("front", "left90"):
        a, b = upright.depth_mm[name], corrected.depth_mm[name]
        both = np.isfinite(a) & np.isfinite(b)
        assert both.sum() > 0.95 * np.isfinite(a).sum()
        assert np.median(np.abs(a[both] - b[both])) < 0.5
        # Without the head affine the same head looks different: the test can fail.
        c = naive.depth_mm[name]
        both = np.isfinite(a) & np.isfinite(c)
        assert np.percentile(np.abs(a[both] - c[both]), 90) > 3.0


def test_head_affine_scaling_is_ignored(head_image, upright):
    scaled = render.render_views(head_image, views=("front",), size=200, head_affine=np.diag([1.2, 0.9, 1.1, 1.0]))
    np.testing.assert_allclose(scaled.depth_mm["front"], upright.depth_mm["front"], equal_nan=True)


@pytest.mark.parametrize(
    "contrast",
    [
        {"skin": 120.0, "inside": 80.0, "air": 4.0},  # T1-like: bright fatty scalp, darker inside
        {"skin": 70.0, "inside": 110.0, "air": 8.0},  # PD-like: dimmer skin, brighter tissue inside
    ],
)
def test_skin_threshold_separates_air_from_skin(contrast):
    data = ndi.gaussian_filter(synthetic_head(**contrast), 0.5)
    skin = render.pick_skin_threshold(data, (VOXEL_MM,) * 3)
    assert skin.ok, skin.reason
    assert contrast["air"] + 10 < skin.value < min(contrast["skin"], contrast["inside"]) - 5


def test_angiogram_like_volume_is_flagged_not_rendered():
    x, y, z = _grid_mm()
    data = np.zeros(SHAPE, dtype=np.float32)
    for cx in (-20.0, 0.0, 25.0):  # a few thin bright vessels in an otherwise dark slab
        data[((x - cx) ** 2 + y**2 <= 9) & (np.abs(z) < 40)] = 250.0
    renders = render.render_views(nib.Nifti1Image(data, centred_affine()))
    assert not renders.skin.ok and "not a head" in renders.skin.reason
    assert renders.views == {}


def test_unknown_view_is_refused(head_image):
    with pytest.raises(ValueError, match="unknown view"):
        render.render_views(head_image, views=("top",))


def test_slices_draw_overlay_contours(tmp_path, head_image):
    x, y, z = _grid_mm()
    face_box = ((y > 60) & (np.abs(x) < 30) & (np.abs(z + 15) < 30)).astype(np.uint8)
    pictures = render.render_slices(head_image, overlays={"face": nib.Nifti1Image(face_box, centred_affine())}, out=tmp_path)
    assert set(pictures) == {"sagittal", "axial"}
    for name, rgb in pictures.items():
        assert rgb.ndim == 3 and rgb.shape[2] == 3
        red = np.all(rgb == render.OVERLAY_COLOURS[0], axis=2)
        assert red.sum() > 20, name
        # Sagittal: face to the right; axial: face up. The contour sits on that side.
        rows, cols = np.nonzero(red)
        if name == "sagittal":
            assert cols.mean() > rgb.shape[1] * 0.6
        else:
            assert rows.mean() < rgb.shape[0] * 0.4
        assert np.asarray(Image.open(tmp_path / f"{name}.png")).shape == rgb.shape


def test_save_png_round_trips(tmp_path):
    image = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(64, 48)
    path = render.save_png(image, tmp_path / "sub" / "view.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
