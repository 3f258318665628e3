"""methods: masks pulled through a known transform land on the right anatomy; each method
changes the face and nothing protected. No registration here: the true transform is used."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import atlas_from_subject, make_subject

from micanon.anonymize import masks as atlas_masks
from micanon.anonymize import warp as warps
from micanon.anonymize import methods as face_methods
from micanon.space import grid
from micanon.anonymize.guard import GUARD_MM
from micanon.space.grid import zooms_of
from micanon.session import load_atlas_images


@pytest.fixture(scope="module")
def native(synthetic_atlas):
    data, affine, parts = make_subject()
    atlas = load_atlas_images(synthetic_atlas)
    masks = atlas_masks.pull_masks(atlas, data.shape, affine, atlas_from_subject(), guard_mm=GUARD_MM, with_face=True,
                                   with_shell=True, with_ears=True)
    return data, affine, parts, masks


def test_masks_land_on_the_anatomy(native):
    _, _, parts, masks = native
    brain = parts["brain"] | parts["ventricle"]
    assert masks.brain_guard[brain].all(), "every true brain voxel must be inside the guard"
    assert masks.face_roi[parts["nose"]].mean() > 0.95
    assert masks.face_roi[parts["eyes"]].mean() > 0.9
    assert not (masks.face_roi & masks.brain_guard).any()
    assert masks.guard_overlap == 0  # the atlas ROI keeps >5 mm from the brain, the guard is 4 mm


def test_guard_wins_over_a_face_roi_that_reaches_the_brain(synthetic_atlas):
    data, affine, parts = make_subject()
    atlas = load_atlas_images(synthetic_atlas)
    # a wildly wrong registration that shrinks the atlas head to half size: the 7 mm gap between
    # atlas face ROI and brain becomes 3.5 mm, inside the 4 mm guard
    wrong = atlas_from_subject() @ np.diag([2.0, 2.0, 2.0, 1.0])
    masks = atlas_masks.pull_masks(atlas, data.shape, affine, wrong, guard_mm=GUARD_MM, with_face=False)
    assert masks.guard_overlap > 0
    assert not (masks.face_roi & masks.brain_guard).any()


def test_the_atlas_head_on_the_native_grid_is_what_reface_pastes_over_the_whole_head(native, synthetic_atlas):
    """QC's atlas face (NativeMasks.atlas_head): the paste over the whole grid, so equal to the
    pasted intensities wherever reface pastes, and a head's worth of tissue beyond; deface's masks
    (without the face) carry none."""
    data, affine, parts, masks = native
    assert masks.atlas_head is not None and masks.atlas_head.shape == data.shape
    replaced = masks.face_zone | masks.shell_zone
    np.testing.assert_allclose(masks.atlas_head[replaced], masks.paste[replaced], atol=1e-4)
    atlas = load_atlas_images(synthetic_atlas)
    assert (masks.atlas_head > atlas.skin).sum() > 4 * (masks.atlas_head[replaced] > atlas.skin).sum()
    assert (masks.atlas_head[parts["brain"]] > 0).all()
    plain = atlas_masks.pull_masks(atlas, data.shape, affine, atlas_from_subject(), guard_mm=GUARD_MM, with_face=False)
    assert plain.atlas_head is None


def test_deface_blanks_the_face_only(native):
    data, _, parts, masks = native
    out = face_methods.deface(data, masks.face_roi, 0.0)
    assert (out[parts["nose"] & masks.face_roi] == 0).all()
    assert np.array_equal(out[~masks.face_roi], data[~masks.face_roi])


def test_reface_replaces_the_face_with_the_atlas_face(native):
    data, affine, parts, masks = native
    out = face_methods.reface(data, masks, zooms_of(affine), shell=False)
    zone = masks.face_zone
    assert np.array_equal(out[~zone], data[~zone])
    # the atlas nose is 10 mm longer: voxels in front of the subject's nose become tissue
    atlas_only_nose = zone & (masks.face > 50) & (data < 20)
    assert atlas_only_nose.sum() > 20
    assert np.median(out[atlas_only_nose]) > 50


def test_reface_replaces_the_head_shell_above_the_neck_and_never_the_guard(native):
    data, affine, parts, masks = native
    out = face_methods.reface(data, masks, zooms_of(affine))
    shell = masks.shell_zone
    assert shell.any() and not (shell & masks.brain_guard).any()
    # nothing outside the face zone and the shell changes; the guard is bit for bit the input
    kept = ~(masks.face_zone | shell)
    assert np.array_equal(out[kept], data[kept])
    assert np.array_equal(out[masks.brain_guard], data[masks.brain_guard])
    ijk = np.argwhere(shell)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    # the shell covers the scalp over the top of the head (the analytic scalp shell, z > 60 mm) ...
    top_scalp = parts["head"] & ~(parts["skull"] | parts["csf"] | parts["brain"] | parts["ventricle"])
    top = np.zeros(data.shape, bool)
    top[tuple(ijk[world[:, 2] > 60].T)] = True
    assert (top & top_scalp).sum() > 50
    assert not np.array_equal(out[top & top_scalp], data[top & top_scalp])
    # ... and the ears, but not the neck far below the brain (the fade ends 20 mm under its floor)
    assert masks.ears is not None and (shell & masks.ears).sum() > 0.9 * masks.ears.sum()
    neck = parts["head"].copy()
    low = np.zeros(data.shape, bool)
    all_ijk = np.argwhere(neck)
    all_world = all_ijk @ affine[:3, :3].T + affine[:3, 3]
    low[tuple(all_ijk[all_world[:, 2] < -110].T)] = True
    assert low.any() and not (shell & low).any()


def test_reface_is_reproducible_and_adds_the_scan_s_own_noise(native):
    data, affine, _, masks = native
    first = face_methods.reface(data, masks, zooms_of(affine))
    assert np.array_equal(first, face_methods.reface(data, masks, zooms_of(affine)))
    # the synthetic scan's noise is N(0, 2) clipped at 0 (air: half-normal, spread ~1.2); the
    # pasted atlas itself is noise-free, so the replaced air away from any tissue is not flat
    far_air = masks.shell_zone & (masks.paste == 0) & (data < 10)
    assert far_air.sum() > 100
    assert 0.3 < float(np.std(first[far_air])) < 6.0


def test_scan_noise_reads_the_noise_level_in_the_air():
    rng = np.random.default_rng(3)
    volume = rng.normal(0, 2.0, (40, 40, 40)).astype(np.float32)
    volume[10:30, 10:30, 10:30] += 100.0
    sample = np.ones(volume.shape, bool)
    pasted = np.where(rng.random(1000) < 0.5, 0.0, 100.0).astype(np.float32)
    noise = face_methods.scan_noise(volume, sample, pasted, skin=50.0)
    air = pasted <= 50
    assert np.std(noise[air]) == pytest.approx(2.0, rel=0.2)
    assert np.std(noise[~air]) == pytest.approx(2.0 / 0.655, rel=0.2)
    assert not face_methods.scan_noise(volume, sample, pasted, skin=None).any()


def test_deface_plate_covers_the_cut_inside_the_face_roi_at_tissue_level(native):
    data, affine, parts, masks = native
    plate, level = face_methods.deface_plate(data, masks.face_roi, zooms_of(affine))
    assert plate.sum() > 50 and not (plate & ~masks.face_roi).any()
    assert not (plate & masks.brain_guard).any()
    assert level is not None and 60 < level < 100  # the analytic scalp is 80
    out = face_methods.deface(data, masks.face_roi, 0.0, plate=plate, plate_fill=level)
    assert np.array_equal(out[~masks.face_roi], data[~masks.face_roi])
    assert (out[plate] == np.float32(level)).all() and (out[masks.face_roi & ~plate] == 0).all()
    # the plate lies just in front of what stays (two 3 mm voxels thick): nothing of it lies
    # deeper than 10 mm inside the ROI, e.g. out at the tip of the nose
    from scipy import ndimage
    deep = ndimage.distance_transform_edt(masks.face_roi, sampling=zooms_of(affine)) > 10
    assert deep.any() and not (plate & deep).any()


def test_deface_plate_is_empty_without_a_skin_surface():
    rng = np.random.default_rng(0)
    angio = rng.normal(0, 1, (40, 40, 40)).astype(np.float32)
    angio[20, 5:35, 20] = 500  # one vessel in an empty field
    roi = np.zeros(angio.shape, bool)
    roi[25:, :, :] = True
    plate, level = face_methods.deface_plate(angio, roi, (1.0, 1.0, 1.0))
    assert level is None and not plate.any()


def test_deface_with_ears_blanks_the_ears_and_never_the_guard(native):
    data, _, _, masks = native
    assert masks.ears is not None and masks.ears.sum() > 20
    assert not (masks.ears & masks.brain_guard).any()
    out = face_methods.deface(data, masks.face_roi, 0.0, masks.ears)
    assert (out[masks.ears] == 0).all() and (out[masks.face_roi] == 0).all()
    kept = ~(masks.ears | masks.face_roi)
    assert np.array_equal(out[kept], data[kept])


def test_reface_blend_spans_several_slices_of_a_thick_slice_image():
    zone = np.zeros((40, 40, 40), bool)
    zone[5:35, 5:35, 5:35] = True
    fine = face_methods.reface_weight(zone, (1.0, 1.0, 1.0))
    thick = face_methods.reface_weight(zone, (1.0, 1.0, 2.4))
    assert fine[~zone].max() == 0 and thick[~zone].max() == 0
    # 8 mm in from the edge (along x): the 1 mm grid takes the atlas face whole, the 2.4 mm
    # slices still blend (ramp over 6 x 2.4 = 14.4 mm), so their staircase edge cannot crease the skin
    assert fine[12, 20, 20] == pytest.approx(1.0) and fine[8, 20, 20] == pytest.approx(4 / 8)
    assert thick[12, 20, 20] == pytest.approx(8 / 14.4, abs=1e-6)
    assert thick[20, 20, 20] == pytest.approx(1.0)


def test_intensity_map_matches_quantiles_and_is_monotone():
    rng = np.random.default_rng(1)
    atlas = np.r_[np.zeros(400), rng.uniform(100, 200, 600)]
    image = np.r_[rng.uniform(0, 5, 400), rng.uniform(1000, 3000, 600)]
    mapping = face_methods.intensity_map(atlas, image)
    probe = np.linspace(0, 250, 50)
    assert np.all(np.diff(mapping(probe)) >= 0)
    assert mapping(np.array([0.0]))[0] < 5  # atlas air becomes this image's air
    assert 1800 < mapping(np.array([150.0]))[0] < 2200  # atlas median tissue -> image median tissue


def test_intensity_map_with_skin_levels_keeps_the_atlas_skin_on_this_image_s_skin():
    # The person's face fills less of the ROI than the atlas face (60 % vs 40 % air): plain
    # quantile matching would send atlas skin-level tissue (110) into this image's air.
    rng = np.random.default_rng(2)
    atlas = np.r_[np.zeros(400), rng.uniform(100, 200, 600)]
    image = np.r_[rng.uniform(0, 5, 600), rng.uniform(1000, 3000, 400)]
    plain = face_methods.intensity_map(atlas, image)
    anchored = face_methods.intensity_map(atlas, image, atlas_skin=50.0, image_skin=500.0)
    assert plain(np.array([110.0]))[0] < 500  # the failure it fixes: a thin lid becomes air
    assert anchored(np.array([50.0]))[0] == pytest.approx(500.0)
    assert anchored(np.array([110.0]))[0] > 1000  # atlas tissue stays tissue
    assert anchored(np.array([0.0]))[0] < 5
    assert np.all(np.diff(anchored(np.linspace(0, 250, 60))) >= 0)
    # too few tissue voxels to match apart: falls back to one class
    few = face_methods.intensity_map(atlas, np.r_[np.zeros(990), np.full(10, 800.0)], atlas_skin=50.0, image_skin=400.0)
    assert np.array_equal(few(atlas[:50]), face_methods.intensity_map(atlas, np.r_[np.zeros(990), np.full(10, 800.0)])(atlas[:50]))


def test_close_face_skin_shuts_a_thin_gap_and_keeps_what_lies_deeper():
    # A 1 mm grid "face": a solid slab of skin-level tissue (value 200) whose front has a dark
    # 6 mm wide, 3 mm deep notch (an eyelid the average blurred away) and a dark pocket 12 mm deep.
    template = np.zeros((40, 40, 40), np.float32)
    template[5:35, 5:35, 5:25] = 200.0
    template[17:23, 17:23, 22:25] = 10.0  # notch open to the air at z = 24
    template[10:14, 10:14, 8:13] = 10.0  # pocket deep inside
    face = template.copy()
    out = atlas_masks.close_face_skin(template, face, np.eye(4), skin=100.0)
    assert (out[17:23, 17:23, 22:25] == 200.0).all()  # the notch is skin again
    assert (out[10:14, 10:14, 8:13] == 10.0).all()  # deeper than the shell: untouched
    assert (out[face == 0] == 0).all() and (out[face == 200] == 200).all()  # air and tissue kept


def test_the_faint_lips_and_chin_of_the_average_get_a_skin_below_the_nose():
    # A 1 mm grid head (y anterior, z up) at 200 (skin level 100) with a nose bump whose tip is
    # at z = 35, and in front of the face below it a chin the average blurred to 70: fainter
    # than skin, so at skin level it is air, pasted as a hole at the mouth.
    template = np.zeros((40, 40, 60), np.float32)
    template[5:35, 5:25, 10:55] = 200.0
    template[18:22, 25:30, 45:50] = 200.0  # nose, tip at y = 29, lowest at z = 45
    template[10:30, 25:29, 10:20] = 70.0  # faint chin, 25-35 mm below the tip
    face = template.copy()
    levels = atlas_masks.skin_levels(template, face > 0, np.eye(4), 100.0)
    assert levels[:, :, 35:].min() == 100.0  # the nose and 10 mm under it: the skin level
    assert levels[:, :, :21].max() == pytest.approx(100.0 * atlas_masks.LOWER_FACE_LEVEL)
    assert np.all(np.diff(levels[0, 0, 20:36]) > 0)  # a ramp, not a step
    out = atlas_masks.close_face_skin(template, face, np.eye(4), skin=100.0)
    assert (out[12:28, 25:28, 11:18] == 200.0).all()  # the chin is skin now (its blurred front voxel aside)
    # a chin this faint above the nose tip would stay what it is
    high = np.zeros_like(template)
    high[:, :, :] = template[:, :, ::-1]  # upside down: the faint block lies above the nose
    high_out = atlas_masks.close_face_skin(high, high.copy(), np.eye(4), skin=100.0)
    assert (high_out[12:28, 26:29, 42:48] == 70.0).any()


def test_below_the_atlas_s_field_of_view_the_face_warp_has_no_target(synthetic_atlas):
    """The atlas grid is padded with air under the average's field of view, whose lowest slices
    fade out. That air is not a face: the warp aimed there pulled B's chin up 30 mm (Jacobian
    0.06, 0.00 on a rotated copy). view_floor finds where the field of view is whole, and
    within_atlas_view drops what lies below it."""
    import dataclasses

    atlas = load_atlas_images(synthetic_atlas)
    template = atlas.template.copy()
    rows = np.flatnonzero((template > atlas.skin).any((0, 1)))
    cut = int(rows[0] + (rows[-1] - rows[0]) // 4)
    template[:, :, :cut] = 0.0  # padding below the field of view
    template[:, :, cut:cut + 2] *= 0.2  # its faint last slices
    padded = dataclasses.replace(atlas, template=template)
    assert padded.view_floor >= cut + 2
    assert atlas.view_floor < cut  # the whole synthetic head is in view
    zone = np.zeros(template.shape, bool)
    zone[:, :, cut - 5:cut + 10] = True
    kept = atlas_masks.within_atlas_view(padded, zone, atlas.affine, np.eye(4))
    assert kept[:, :, padded.view_floor:cut + 10].all() and not kept[:, :, :padded.view_floor].any()
    assert not kept[~zone].any()


def test_reface_and_the_warp_replace_nothing_below_the_atlas_s_field_of_view(synthetic_atlas):
    """What reface pastes and the warp aims at (the face zone, the shell) stop at the atlas's
    field of view: below it the atlas is padding air, which pasted cut a gash under B's lips."""
    import dataclasses

    data, affine, _ = make_subject()
    atlas = load_atlas_images(synthetic_atlas)
    grid_to_atlas = atlas_from_subject()
    whole = atlas_masks.pull_masks(atlas, data.shape, affine, grid_to_atlas, guard_mm=GUARD_MM, with_face=True, with_shell=True)
    to_atlas_voxel = np.linalg.inv(atlas.affine) @ grid_to_atlas @ affine
    k_of = lambda mask: np.argwhere(mask) @ to_atlas_voxel[2, :3] + to_atlas_voxel[2, 3]  # noqa: E731
    k = k_of(whole.face_zone)
    cut = int(np.percentile(k, 50))  # the average's view ends halfway down this face
    template = atlas.template.copy()
    template[:, :, :cut] = 0.0
    padded = dataclasses.replace(atlas, template=template)
    masks = atlas_masks.pull_masks(padded, data.shape, affine, grid_to_atlas, guard_mm=GUARD_MM, with_face=True, with_shell=True)
    assert masks.face_zone.any() and masks.face_zone.sum() < 0.7 * whole.face_zone.sum()
    assert k_of(masks.face_zone).min() >= padded.view_floor - 0.5
    assert not masks.shell_zone.any() or k_of(masks.shell_zone).min() >= padded.view_floor - 0.5
    # reface changes nothing below it (the face ROI itself is deface's, and stays whole)
    out = face_methods.reface(data, masks, zooms_of(affine))
    below = np.zeros(data.shape, bool)
    below[tuple(np.argwhere(np.ones(data.shape, bool))[k_of(np.ones(data.shape, bool)) < padded.view_floor - 0.5].T)] = True
    assert (out[below] == data[below]).all() and (out != data).any()
    assert masks.face_roi.sum() == whole.face_roi.sum()


def test_pull_fraction_of_thick_slices():
    # atlas: 1 mm grid, mask = half-space z < 0; native: 4 mm slices, one centred on z = 0
    mask = np.zeros((10, 10, 40), np.uint8)
    mask[:, :, :20] = 1
    mask_affine = np.diag([1.0, 1, 1, 1])
    mask_affine[:3, 3] = [-5, -5, -19.5]
    affine = np.diag([1.0, 1, 4, 1])
    affine[:3, 3] = [-3, -3, -8]
    frac = atlas_masks.pull_fraction(mask, mask_affine, (4, 4, 5), affine, np.eye(4))
    assert frac[1, 1].tolist() == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0], abs=0.01)


def test_dilate_mm_respects_anisotropic_voxels():
    mask = np.zeros((21, 21, 21), bool)
    mask[10, 10, 10] = True
    grown = grid.dilate_mm(mask, (1.0, 1.0, 3.0), 6.0)
    assert grown[4, 10, 10] and not grown[3, 10, 10]  # 6 mm along x
    assert grown[10, 10, 10] and grown[10, 10, 12] and not grown[10, 10, 13]  # 2 slices of 3 mm
    assert not grown[16, 16, 10]  # corner at 8.5 mm


def test_background_value():
    mri = np.zeros((10, 10, 10), np.float32)
    mri[3:7, 3:7, 3:7] = 500
    assert face_methods.background_value(mri) == 0.0
    ct = np.full((10, 10, 10), -1024.0, np.float32)
    ct[3:7, 3:7, 3:7] = 40
    assert face_methods.background_value(ct) == -1024.0
    offset = mri + 100
    assert face_methods.background_value(offset) == 100.0


def test_warp_sampling_and_warpface_move_only_displaced_voxels():
    volume = np.random.default_rng(2).uniform(0, 100, (20, 20, 20)).astype(np.float32)
    affine = np.eye(4)
    field = np.zeros((5, 5, 5, 3), np.float32)
    field[2, 2, 2] = [2.0, 0.0, 0.0]  # one node of a 2 mm box grid moves 2 mm in x
    box_affine = np.diag([2.0, 2, 2, 1])
    box_affine[:3, 3] = [4, 4, 4]
    sampling = warps.warp_sampling(warps.FaceWarp(field, box_affine), volume.shape, affine, np.eye(4))
    assert sampling.moved[8, 8, 8] and sampling.moved.sum() < 30
    centre = np.flatnonzero(np.argwhere(sampling.moved).tolist().index([8, 8, 8]) == np.arange(sampling.moved.sum()))[0]
    assert sampling.coords[:, centre] == pytest.approx([10.0, 8.0, 8.0])
    out = face_methods.warpface(volume, sampling)
    assert out[8, 8, 8] == pytest.approx(volume[10, 8, 8], abs=1e-3)
    assert np.array_equal(out[~sampling.moved], volume[~sampling.moved])


def test_flow_of_a_folding_field_does_not_fold_and_keeps_still_points_still():
    box_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    shape = (40, 40, 40)
    x = np.indices(shape)[0] * 2.0
    # every point pushed +x by up to 12 mm by a bump 6 mm wide: as a displacement it folds
    velocity = np.zeros(shape + (3,), np.float32)
    velocity[..., 0] = 12.0 * np.exp(-((x - 40.0) / 6.0) ** 2)
    velocity[:, :, :4] = 0.0  # a still region, like the dilated brain_neck
    assert warps.jacobian_determinant(velocity, box_affine).min() < 0, "precondition: the raw field folds"
    disp = warps.flow(velocity, box_affine)
    assert warps.jacobian_determinant(disp, box_affine).min() > 0
    assert np.array_equal(disp[:, :, :4], np.zeros_like(disp[:, :, :4]))
    assert np.abs(disp).max() > 6.0, "the flow still moves points far"
    small = velocity * 0.01
    assert warps.flow(small, box_affine) == pytest.approx(small, abs=1e-3)


def test_a_rough_field_is_smoothed_until_its_flow_does_not_fold():
    box_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    velocity = np.random.default_rng(3).normal(0, 6.0, (30, 30, 30, 3)).astype(np.float32)
    velocity[:, :, :5] = 0.0
    assert warps.jacobian_determinant(warps.flow(velocity, box_affine), box_affine).min() < 0, "precondition"
    disp = warps.unfolded_flow(velocity, box_affine)
    assert warps.jacobian_determinant(disp, box_affine).min() > 0
    assert not disp[:, :, :5].any()
    assert np.abs(disp).max() > 0.5


def test_a_field_that_still_folds_after_smoothing_is_halved_and_then_refused(monkeypatch):
    box_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    x = np.indices((30, 30, 30))[0] * 2.0
    velocity = np.zeros((30, 30, 30, 3), np.float32)
    velocity[..., 0] = 8.0 * np.exp(-((x - 30.0) / 8.0) ** 2)  # a smooth push of up to 8 mm
    full = np.abs(warps.flow(velocity, box_affine)).max()
    real_jacobian = warps.jacobian_determinant

    def folds_beyond(limit_mm):
        # a stand-in for "this field folds": any displacement beyond limit_mm counts as folded
        return lambda disp, affine: real_jacobian(disp, affine) - (np.abs(disp).max() > limit_mm)

    monkeypatch.setattr(warps, "jacobian_determinant", folds_beyond(0.3 * full))
    disp = warps.unfolded_flow(velocity, box_affine)
    assert 0.1 * full < np.abs(disp).max() <= 0.3 * full, "weakened by halving, not dropped"
    monkeypatch.setattr(warps, "jacobian_determinant", folds_beyond(full * 0.5 ** (warps.WARP_HALVINGS + 2)))
    with pytest.raises(ValueError, match="halvings"):
        warps.unfolded_flow(velocity, box_affine)


def test_warpface_pastes_the_shell_as_reface_does_around_the_person_s_own_face(native):
    data, affine, _, masks = native
    zooms = zooms_of(affine)
    still = warps.warp_sampling(warps.FaceWarp(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), data.shape, affine, np.eye(4))
    assert not still.moved.any()
    out = face_methods.warpface(data, still, masks, zooms)
    refaced = face_methods.reface(data, masks, zooms)
    # the face zone keeps the (here unwarped) face; the guard and everything kept are the input's
    assert np.array_equal(out[masks.face_zone], data[masks.face_zone])
    kept = ~(masks.face_zone | masks.shell_zone)
    assert np.array_equal(out[kept], data[kept])
    assert np.array_equal(out[masks.brain_guard], data[masks.brain_guard])
    # away from the face the shell is reface's, bit for bit; next to it the atlas fades in
    from_face = grid.edt_mm(~masks.face_zone, zooms)
    far = masks.shell_zone & (from_face > 2 * face_methods._feather(zooms))
    near = masks.shell_zone & (from_face < 0.5 * face_methods._feather(zooms)) & (np.abs(refaced - data) > 5)
    assert far.sum() > 100 and near.sum() > 20
    assert np.array_equal(out[far], refaced[far])
    assert np.abs(out[near] - data[near]).mean() < 0.6 * np.abs(refaced[near] - data[near]).mean()
    # without the shell in the masks, warpface is the warp alone
    assert np.array_equal(face_methods.warpface(data, still), data.astype(np.float32))


def test_the_ears_box_is_replaced_whole_and_fades_out_beyond_its_faces(synthetic_atlas):
    data, affine, _ = make_subject()
    atlas = load_atlas_images(synthetic_atlas)
    # the shell's own fade toward the neck put above the head: only the ears weigh in, as below
    # the fade on a real head, where a step at the box's floor showed as a ridge under the ear lobe
    atlas.__dict__["brain_floor_z"] = 1000.0
    masks = atlas_masks.pull_masks(atlas, data.shape, affine, atlas_from_subject(), guard_mm=GUARD_MM, with_face=True,
                                   with_shell=True, with_ears=True)
    zooms = zooms_of(affine)
    assert masks.ears is not None and masks.ears.any()
    assert (masks.shell_weight[masks.ears] == 1).all()
    beyond = grid.edt_mm(~masks.ears, zooms)
    ramp = (beyond > 0) & (beyond < atlas_masks.EARS_FADE_MM)
    expected = np.clip(1 - beyond / atlas_masks.EARS_FADE_MM, 0, 1)
    assert (masks.shell_weight[ramp] >= expected[ramp] - 1e-6).all()
    assert ((masks.shell_weight > 0.05) & (masks.shell_weight < 0.95)).sum() > 50, "a ramp, not a step"
    assert not masks.shell_weight[beyond > atlas_masks.EARS_FADE_MM + 2 * zooms.max()].any()
