"""The stress set: heads micanon has never been tuned on, made in code from what we have.

Persons A and B (../shared/data, licensed: never copied into the project) and the atlas's own
average head, perturbed the ways real data differs: rotated in the scanner, an sform-only header,
the nose cut by the field of view, a long neck, T2w-like contrast, thick slices, an oblique slab
of partial coverage, a 2 mm grid. Each case says what the fit check must conclude; a planted
failure (a fit shifted so the face ROI lands on the brain) must be refused outright.

``python -m tests.stress`` (from python/) prints the table the docs give.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
from scipy.spatial.transform import Rotation

from micanon.space.grid import coarse_copy, resample, zooms_of

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
PERSON_A = DATA / "bids-person-a" / "sub-A" / "ses-01" / "anat" / "sub-A_ses-01_T1w.nii.gz"
PERSON_B = DATA / "bids-person-b" / "sub-B" / "anat" / "sub-B_T1w.nii.gz"


@dataclass(frozen=True)
class Head:
    """A head as the engine receives it: volume on its grid, the grid's affine, and how the
    reference is named (``t1w`` False: a stand-in of another contrast)."""

    volume: np.ndarray
    affine: np.ndarray
    t1w: bool = True
    # maps this head's world points to its source's (the perturbation moved the head by its inverse)
    to_source: np.ndarray = field(default_factory=lambda: np.eye(4))


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # "A", "B" or "atlas"
    make: Callable[[Head], Head]
    fit: str  # expected fit-check flag: "ok" or "poor"
    hard: bool = False  # expected: refused outright (face ROI inside the brain)
    # planted failure: native_to_atlas followed by this shift (atlas mm); (0, +25, -20) carries the
    # atlas face ROI 25 mm back and 20 mm up in the head, onto the frontal lobe
    shift_fit_mm: tuple[float, float, float] | None = None
    why: str = ""


def _rotated(head: Head, degrees: float, axis: str = "x") -> Head:
    """The head turned by ``degrees`` about its field of view's centre (a header change: same voxels)."""
    centre = head.affine @ np.r_[(np.asarray(head.volume.shape[:3]) - 1) / 2, 1.0]
    turn = np.eye(4)
    turn[:3, :3] = Rotation.from_euler(axis, degrees, degrees=True).as_matrix()
    move = np.eye(4)
    move[:3, 3] = centre[:3]
    back = np.eye(4)
    back[:3, 3] = -centre[:3]
    moved = move @ turn @ back
    return Head(head.volume, moved @ head.affine, head.t1w, head.to_source @ np.linalg.inv(moved))


def _axis_towards(affine: np.ndarray, world: np.ndarray) -> tuple[int, int]:
    """The voxel axis most aligned with a world direction, and the sign of that alignment."""
    cosines = (affine[:3, :3] / zooms_of(affine)).T @ np.asarray(world, float)
    axis = int(np.argmax(np.abs(cosines)))
    return axis, int(np.sign(cosines[axis]))


def _cut(head: Head, world: tuple[float, float, float], mm: float) -> Head:
    """The field of view cut ``mm`` short on the side facing ``world`` (e.g. (0, 1, 0): the front)."""
    axis, sign = _axis_towards(head.affine, world)
    n = int(round(mm / zooms_of(head.affine)[axis]))
    index = [slice(None)] * 3
    index[axis] = slice(0, head.volume.shape[axis] - n) if sign > 0 else slice(n, None)
    affine = head.affine.copy()
    if sign < 0:
        affine[:3, 3] = (head.affine @ np.r_[[n if a == axis else 0 for a in range(3)], 1.0])[:3]
    return replace(head, volume=np.ascontiguousarray(head.volume[tuple(index)]), affine=affine)


def _long_neck(head: Head, mm: float = 60.0) -> Head:
    """Extra field of view below the head: its lowest slices repeated for ``mm`` (a neck and shoulders' worth)."""
    axis, sign = _axis_towards(head.affine, (0, 0, -1))
    n = int(round(mm / zooms_of(head.affine)[axis]))
    edge = np.take(head.volume, [-1] if sign > 0 else [0], axis=axis)
    pad = np.repeat(edge, n, axis=axis)
    volume = np.concatenate([head.volume, pad] if sign > 0 else [pad, head.volume], axis=axis)
    affine = head.affine.copy()
    if sign < 0:
        affine[:3, 3] = (head.affine @ np.r_[[-n if a == axis else 0 for a in range(3)], 1.0])[:3]
    return replace(head, volume=volume, affine=affine)


def _t2_like(head: Head) -> Head:
    """Contrast turned inside the head (dark becomes bright), named as a stand-in, not a T1w."""
    v = head.volume.astype(np.float32)
    inside = v > np.percentile(v, 60) * 0.3
    out = np.where(inside, np.percentile(v[inside], 99) - v, 0).clip(0)
    return replace(head, volume=out.astype(np.float32), t1w=False)


def _regrid(head: Head, zooms: tuple[float, float, float]) -> Head:
    """Resampled on a grid of the same axes and box with voxels ``zooms`` mm (thick slices, 2 mm)."""
    factor = np.asarray(zooms) / zooms_of(head.affine)
    shape = tuple(int(n) for n in np.maximum(np.floor(np.asarray(head.volume.shape[:3]) / factor), 1))
    affine = head.affine.copy()
    affine[:3, :3] = head.affine[:3, :3] * factor
    return replace(head, volume=resample(head.volume, head.affine, shape, affine), affine=affine)


def _oblique_slab(head: Head) -> Head:
    """A T2w-like oblique slab: 20 degrees off axial, 2 mm slices, 120 mm of coverage from the
    vertex down (it ends above the eyes' lower edge)."""
    turned = _rotated(head, 20.0, "x")
    thick = _regrid(turned, (1.0, 1.0, 2.0))
    axis, sign = _axis_towards(thick.affine, (0, 0, 1))
    keep = int(round(120.0 / zooms_of(thick.affine)[axis]))
    top = _cut(thick, (0, 0, -1), (thick.volume.shape[axis] - keep) * zooms_of(thick.affine)[axis])
    return _t2_like(top)


def _same(head: Head) -> Head:
    return head


CASES = [
    Case("A", "A", _same, "ok", why="the real head, as acquired"),
    Case("A rotated 25 deg", "A", lambda h: _rotated(h, 25.0, "x"), "ok", why="pitched in the scanner"),
    Case("A rotated 20 deg yaw", "A", lambda h: _rotated(h, 20.0, "z"), "ok"),
    Case("A nose cut", "A", lambda h: _cut(h, (0, 1, 0), 15.0), "ok", why="field of view ends through the nose"),
    Case("A 1x1x4 mm slices", "A", lambda h: _regrid(h, (1.0, 1.0, 4.0)), "ok", why="thick axial slices"),
    Case("A T2w-like stand-in", "A", _t2_like, "ok", why="no T1w: another contrast stands in"),
    Case("A oblique T2w slab", "A", _oblique_slab, "poor",
         why="no T1w, eyes cut: only the head overlap can speak, and it cannot vouch for this fit (4-9 mm off): refused"),
    Case("B", "B", _same, "ok", why="whole face, 3 mm, LIA"),
    Case("B rotated 30 deg", "B", lambda h: _rotated(h, -30.0, "x"), "ok"),
    Case("B long neck", "B", _long_neck, "ok", why="60 mm more below the head"),
    Case("atlas head at 2 mm", "atlas", lambda h: _regrid(h, (2.0, 2.0, 2.0)), "ok", why="a population average"),
    Case("A fit shifted into the brain", "A", _same, "poor", hard=True, shift_fit_mm=(0.0, 25.0, -20.0),
         why="planted failure: the face ROI lands on the frontal lobe"),
]


def load_source(source: str, atlas_images=None) -> Head | None:
    """The unperturbed head of a case, or None where its data is absent."""
    if source == "atlas":  # the atlas head lives in atlas space: its true fit is the identity
        return Head(np.asarray(atlas_images.template, np.float32), atlas_images.affine)
    path = {"A": PERSON_A, "B": PERSON_B}[source]
    if not path.exists():
        return None
    image = nib.load(str(path))
    return Head(np.asarray(image.dataobj, np.float32), image.affine)


def qform0_sform_only(path_in: Path, path_out: Path) -> None:
    """A copy of a NIfTI whose header has qform_code 0 and the sform alone (code 4: MNI)."""
    image = nib.load(str(path_in))
    out = nib.Nifti1Image(np.asarray(image.dataobj), image.affine, image.header)
    out.set_qform(None, code=0)
    out.set_sform(image.affine, code=4)
    nib.save(out, str(path_out))


def run_case(case: Case, atlas_images, work_dir: str):
    """The engine's reference fit of one case: (ReferenceFit, the perturbed Head)."""
    from micanon import session

    head = load_source(case.source, atlas_images)
    if head is None:
        return None, None
    head = case.make(head)
    if case.shift_fit_mm is None:
        return session.fit_reference(head.volume, head.affine, atlas_images, work_dir=work_dir,
                                     reference_is_t1w=head.t1w), head
    with shifted_fit(case.shift_fit_mm):
        return session.fit_reference(head.volume, head.affine, atlas_images, work_dir=work_dir,
                                     reference_is_t1w=head.t1w), head


@contextlib.contextmanager
def shifted_fit(shift_mm):
    """Within the block, the engine's atlas fits are followed by a shift of ``shift_mm`` (atlas mm)."""
    from micanon import session

    real = session.register_to_atlas
    shift = np.eye(4)
    shift[:3, 3] = shift_mm

    def shifted(*args, **kwargs):
        fit = real(*args, **kwargs)
        return replace(fit, native_to_atlas=shift @ fit.native_to_atlas)

    session.register_to_atlas = shifted
    try:
        yield
    finally:
        session.register_to_atlas = real


def fit_error_mm(native_to_atlas: np.ndarray, head: Head, source_fit: np.ndarray | None, atlas_images) -> str:
    """How far (mm, mean and max over the atlas brain) a case's fit lands from its source's own
    fit carried through the known perturbation: the ground truth of a perturbed head. For an
    atlas case the source fit is the identity (the atlas head is in atlas space)."""
    if source_fit is None:
        return "-"
    truth = source_fit @ head.to_source
    points = np.argwhere(atlas_images.brain[::4, ::4, ::4]) * 4
    world = points @ atlas_images.affine[:3, :3].T + atlas_images.affine[:3, 3]
    gap = (np.linalg.inv(native_to_atlas) - np.linalg.inv(truth))
    moved = world @ gap[:3, :3].T + gap[:3, 3]
    distance = np.linalg.norm(moved, axis=1)
    return f"{distance.mean():.1f} / {distance.max():.1f}"


def main() -> None:
    import tempfile

    from micanon.atlas.load import default_atlas_dir, load_atlas
    from micanon.session import load_atlas_images

    atlas_images = load_atlas_images(load_atlas(default_atlas_dir()))
    print("| case | expected | fit check | hard | fit error (mm) | witnesses (brain, eyes, similarity) | evidence | native brain |")
    print("|---|---|---|---|---|---|---|---|")
    source_fits = {"atlas": np.eye(4)}
    for case in CASES:
        with tempfile.TemporaryDirectory() as work:
            fit, head = run_case(case, atlas_images, work)
        if fit is None:
            print(f"| {case.name} | {case.fit} | skipped: data absent | | | | | |")
            continue
        if case.make is _same and case.shift_fit_mm is None:
            source_fits[case.source] = fit.atlas_fit.native_to_atlas
        error = fit_error_mm(fit.atlas_fit.native_to_atlas, head, source_fits.get(case.source), atlas_images)
        w = fit.check.witnesses
        ev = ", ".join(f"{k} {v}" for k, v in fit.check.evidence.items() if k != "similarity_metric")
        print(f"| {case.name} | {case.fit}{' (hard)' if case.hard else ''} | {fit.check.flag} | {fit.check.hard} | {error} | "
              f"{w['brain']}, {w['eyes']}, {w['similarity']} | {ev} | {fit.brain.volume_ml:.0f} ml {'ok' if fit.brain.ok else fit.brain.note} |",
              flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
