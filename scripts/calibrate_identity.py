#!/usr/bin/env python
"""Measure face detection and face-identity distances on renders; write docs/qc-calibration.md.

Same person: person A's T1w against copies of itself (rotated, re-sliced thick, noisy) and
against A's own PDw. Different people: A (and its copies) against pydeface's full-head
average. Deface checks: pydeface's face mask applied to the average and (through a 4 mm ANTsPy
affine) to A, plus a crude plane cut in front of A's eyes. Renders go to --renders (default
/tmp/qc/calibration), never into the repository: they show person A's face.

Usage: .venv/bin/python scripts/calibrate_identity.py [--data DIR] [--pydeface-wheel WHL]
       [--renders DIR] [--out docs/qc-calibration.md]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import zipfile
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
import scipy.ndimage as ndi

from micanon import face, render

REPO = Path(__file__).resolve().parents[1]
T1W = "sub-A/ses-01/anat/sub-A_ses-01_T1w.nii.gz"
PDW = "sub-A/ses-01/anat/sub-A_ses-01_PDw.nii.gz"
ANGIO = "sub-A/ses-01/anat/sub-A_ses-01_angio.nii.gz"
RNG_SEED = 20240610


def head_to_reference_affine(moving: nib.Nifti1Image, reference: nib.Nifti1Image, mm: float = 4.0) -> np.ndarray:
    """4x4 RAS-mm affine taking ``moving``'s scanner space onto ``reference``'s (ANTsPy, at ``mm``)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, img in (("fixed", reference), ("moving", moving)):
            path = Path(tmp) / f"{name}.nii.gz"
            nib.save(img, path)
            paths.append(str(path))
        fixed, moving_ants = (ants.resample_image(ants.image_read(p), (mm,) * 3, False, 0) for p in paths)
        result = ants.registration(fixed, moving_ants, "Affine", random_seed=1)
        transform = ants.read_transform(result["fwdtransforms"][0])
    params = np.asarray(transform.parameters)
    centre = np.asarray(transform.fixed_parameters)
    matrix, translation = params[:9].reshape(3, 3), params[9:]
    # ITK maps fixed-space points to moving-space points, in LPS: flip to RAS, then invert.
    lps = np.diag([-1.0, -1.0, 1.0])
    fixed_to_moving = np.eye(4)
    fixed_to_moving[:3, :3] = lps @ matrix @ lps
    fixed_to_moving[:3, 3] = lps @ (translation + centre - matrix @ centre)
    return np.linalg.inv(fixed_to_moving)


def rotated_copy(img: nib.Nifti1Image, degrees_xyz: tuple[float, float, float]) -> nib.Nifti1Image:
    """The head physically rotated (resampled, same grid) about the grid centre by the given angles."""
    ax, ay, az = np.deg2rad(degrees_xyz)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rotation = rz @ ry @ rx
    linear = img.affine[:3, :3]
    # voxel -> voxel map of the rotation about the grid centre, expressed in world mm
    voxel_rotation = np.linalg.inv(linear) @ rotation.T @ linear
    centre = (np.asarray(img.shape[:3]) - 1) / 2
    data = np.asarray(img.dataobj, dtype=np.float32)
    moved = ndi.affine_transform(data, voxel_rotation, offset=centre - voxel_rotation @ centre, order=1)
    return nib.Nifti1Image(moved, img.affine)


def thick_slice_copy(img: nib.Nifti1Image, slice_mm: float = 2.4) -> nib.Nifti1Image:
    """The head re-acquired as thick axial slices: averaged over ``slice_mm`` then decimated."""
    data = np.asarray(img.dataobj, dtype=np.float32)
    step = max(1, int(round(slice_mm / img.header.get_zooms()[2])))
    averaged = ndi.uniform_filter1d(data, step, axis=2)[:, :, ::step]
    affine = img.affine @ np.diag([1.0, 1.0, step, 1.0])
    return nib.Nifti1Image(averaged, affine)


def noisy_copy(img: nib.Nifti1Image, fraction: float = 0.05) -> nib.Nifti1Image:
    """The head with Rician noise of ``fraction`` x its 99th percentile (magnitude of complex noise)."""
    data = np.asarray(img.dataobj, dtype=np.float32)
    sigma = fraction * float(np.percentile(data, 99))
    rng = np.random.default_rng(RNG_SEED)
    noisy = np.hypot(data + rng.normal(0, sigma, data.shape), rng.normal(0, sigma, data.shape))
    return nib.Nifti1Image(noisy.astype(np.float32), img.affine)


def plane_cut_copy(img: nib.Nifti1Image, head_affine: np.ndarray, behind_nose_mm: float = 35.0) -> nib.Nifti1Image:
    """Crude deface: zero everything (in the upright frame) anterior to a coronal plane
    ``behind_nose_mm`` behind the most anterior skin point and below the top of the orbits."""
    data = np.asarray(img.dataobj, dtype=np.float32).copy()
    skin = render.pick_skin_threshold(ndi.gaussian_filter(data, 1.0), img.header.get_zooms()[:3]).value
    rotation = render.rotation_of(head_affine)
    ijk = np.indices(data.shape).reshape(3, -1)
    upright = rotation @ (img.affine[:3, :3] @ ijk + img.affine[:3, 3:4])
    head = (data > skin).ravel()
    front = upright[1, head].max()
    # Eyes sit ~25-30 mm behind the nose tip; forehead above them stays.
    tip_height = upright[2, head][np.argmax(upright[1, head])]
    cut = (upright[1] > front - behind_nose_mm) & (upright[2] < tip_height + 45.0)
    data.reshape(-1)[cut] = 0
    return nib.Nifti1Image(data, img.affine)


def extract_pydeface(wheel: Path, into: Path) -> tuple[Path, Path]:
    """pydeface's average head and face mask, copied out of its wheel."""
    paths = []
    with zipfile.ZipFile(wheel) as archive:
        for name in ("mean_reg2mean.nii.gz", "facemask.nii.gz"):
            target = into / name
            target.write_bytes(archive.read(f"pydeface/data/{name}"))
            paths.append(target)
    return paths[0], paths[1]


def detection_row(views: dict[str, np.ndarray]) -> tuple[dict[str, str], dict[str, float]]:
    """Per view 'HOG score / CNN confidence' (best, '-' when none) and detector call times."""
    cells, seconds = {}, {"hog": 0.0, "cnn": 0.0}
    for name, image in views.items():
        parts = []
        for detector in face.DETECTORS:
            start = time.perf_counter()
            found = face.detect(image, [detector])
            seconds[detector] += time.perf_counter() - start
            parts.append(f"{found[0].score:.2f}" if found else "-")
        cells[name] = " / ".join(parts)
    return cells, {k: v / max(len(views), 1) for k, v in seconds.items()}


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f} (n={len(values)})" if values else "(none)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("MICANON_SHARED_DATA", REPO.parent / "shared" / "data")) / "bids-person-a"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--pydeface-wheel", type=Path, default=Path("/tmp/wh/pydeface-2.1.0-py3-none-any.whl"))
    parser.add_argument("--renders", type=Path, default=Path("/tmp/qc/calibration"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "qc-calibration.md")
    args = parser.parse_args()
    args.renders.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="micanon-calibration-"))
    mean_path, facemask_path = extract_pydeface(args.pydeface_wheel, work)

    mean = nib.load(mean_path)
    t1w = nib.load(args.data / T1W)
    t1w_to_mean = head_to_reference_affine(t1w, mean)

    heads: dict[str, tuple[nib.Nifti1Image, np.ndarray | None, str]] = {}
    heads["A T1w"] = (t1w, t1w_to_mean, "person A")
    heads["A T1w, no head_affine"] = (t1w, None, "person A")
    for label, copy in (
        ("A T1w rotated 3/-4/2 deg", rotated_copy(t1w, (3.0, -4.0, 2.0))),
        ("A T1w rotated 8/5/-5 deg", rotated_copy(t1w, (8.0, 5.0, -5.0))),
        ("A T1w 2.4 mm thick slices", thick_slice_copy(t1w)),
        ("A T1w + 5% Rician noise", noisy_copy(t1w)),
    ):
        heads[label] = (copy, head_to_reference_affine(copy, mean), "person A")
    pdw = nib.load(args.data / PDW)
    heads["A PDw"] = (pdw, head_to_reference_affine(pdw, mean), "person A")
    heads["pydeface average"] = (mean, None, "average head")
    facemask = np.asarray(nib.load(facemask_path).dataobj) > 0.5
    heads["pydeface average, facemask applied"] = (
        nib.Nifti1Image(np.asarray(mean.dataobj, dtype=np.float32) * facemask, mean.affine),
        None,
        "defaced",
    )
    # pydeface's mask onto A: nearest-neighbour through the inverse of A -> average.
    mask_img = nib.Nifti1Image(facemask.astype(np.float32), mean.affine)
    mean_to_t1w = np.linalg.inv(t1w_to_mean)
    voxel_map = np.linalg.inv(mask_img.affine) @ np.linalg.inv(mean_to_t1w) @ t1w.affine
    mask_on_t1w = ndi.affine_transform(
        mask_img.get_fdata(dtype=np.float32), voxel_map[:3, :3], voxel_map[:3, 3], output_shape=t1w.shape, order=0, cval=1.0
    )
    heads["A T1w, pydeface facemask applied"] = (
        nib.Nifti1Image(np.asarray(t1w.dataobj, dtype=np.float32) * mask_on_t1w, t1w.affine),
        t1w_to_mean,
        "defaced",
    )
    heads["A T1w, plane cut 35 mm behind nose"] = (plane_cut_copy(t1w, t1w_to_mean), t1w_to_mean, "defaced")

    detection_lines, descriptors, render_seconds, detect_seconds = {}, {}, [], []
    skins = {}
    for label, (img, head_affine, _) in heads.items():
        start = time.perf_counter()
        renders = render.render_views(img, head_affine=head_affine)
        elapsed = time.perf_counter() - start
        render_seconds.append((label, elapsed, len(renders.views)))
        skins[label] = renders.skin
        slug = "".join(c if c.isalnum() else "_" for c in label)
        render.save_png(np.concatenate([renders.views[v] for v in render.ALL_VIEWS], axis=1), args.renders / f"{slug}.png")
        detection_lines[label], seconds = detection_row(renders.views)
        detect_seconds.append(seconds)
        descriptors[label] = face.describe_views(renders.views)
    angio = render.render_views(args.data / ANGIO)

    same, different = [], []
    pairs = [(label, "A T1w") for label in heads if heads[label][2] == "person A" and label != "A T1w"]
    pairs += [("pydeface average", label) for label in heads if heads[label][2] == "person A"]
    identity_rows = []
    for left, right in pairs:
        result = face.identity_distance(descriptors[left], descriptors[right])
        kind = "same" if heads[left][2] == heads[right][2] else "different"
        if result["distance"] is not None:
            (same if kind == "same" else different).append(result["distance"])
        per_view = ", ".join(f"{v} {d:.3f}" for v, d in result["per_view"].items() if d is not None)
        dist = "-" if result["distance"] is None else f"{result['distance']:.3f}"
        identity_rows.append(f"| {left} | {right} | {kind} | {dist} | {result['views_compared']} | {per_view} |")

    lines = [
        "# QC calibration: face detection and identity on surface renders",
        "",
        f"Produced by `scripts/calibrate_identity.py` ({time.strftime('%Y-%m-%d')}); model `{face.MODEL_VERSION}`.",
        "Renders: `micanon.render.render_views` (320 px, Lambert-shaded first-hit depth of the Otsu skin surface).",
        "Person A's renders are not stored in the repository (they show a face).",
        "",
        "## Detections per view (best HOG score / best CNN confidence; '-' = no detection at dlib's default 0)",
        "",
        "| head | " + " | ".join(render.ALL_VIEWS) + " |",
        "|---" * (len(render.ALL_VIEWS) + 1) + "|",
    ]
    for label, cells in detection_lines.items():
        lines.append(f"| {label} | " + " | ".join(cells.get(v, "n/a") for v in render.ALL_VIEWS) + " |")
    lines += [
        "",
        f"Angiogram: surface ok = {angio.skin.ok} ({angio.skin.reason}); no views rendered.",
        "",
        "Skin thresholds (Otsu on a ~2 mm copy): "
        + "; ".join(f"{k}: {v.value:.1f} (separation {v.otsu_separation:.2f})" for k, v in skins.items())
        + ".",
        "",
        "## Identity distances (dlib ResNet descriptor, Euclidean; min over views where both show a face)",
        "",
        "| head | against | person | distance | views | per view |",
        "|---|---|---|---|---|---|",
        *identity_rows,
        "",
    ]
    if same and different:
        lines += [
            f"Same person: max {max(same):.3f} (n={len(same)}); different: min {min(different):.3f} (n={len(different)}).",
            f"Chosen `IDENTITY_THRESHOLD` = {face.IDENTITY_THRESHOLD}.",
            "",
        ]
    lines += [
        "## What the numbers say",
        "",
        "- Person A's field of view ends below the nose: the CNN detector never fires on A's intact T1w,",
        "  HOG fires only in the low views (front_low, left_low/right_low, pitch -25 deg); the low views",
        "  were added for this reason. The average head (whole face) is found by both in 5-7 views.",
        "- HOG also fires on defaced heads (orbits, nasal cavity and the field-of-view cut exposed by a",
        "  planar cut look like a face from below), as strongly as on A's intact face: it cannot judge",
        "  deface. The CNN detector never fired on any defaced head, so `DEFACE_CHECK_DETECTORS = ('cnn',)`.",
        "  For heads like A the CNN does not see the intact face either, so the deface check is",
        "  inconclusive there: report it as such when the input shows no CNN face.",
        f"- Identity: copies of A (rotation, thick slices, noise, other contrast) measured"
        f" {_span(same)}; A and its copies against the average head {_span(different)}. The threshold"
        f" ({face.IDENTITY_THRESHOLD}) sits between. A's PDw shows a face (CNN only, one low view) in a"
        " different view than its T1w or none: across contrasts on partial faces the descriptor often has",
        "  no shared view to compare, and then the check has nothing to say (distance None).",
        "",
    ]
    mean_hog = np.mean([s["hog"] for s in detect_seconds])
    mean_cnn = np.mean([s["cnn"] for s in detect_seconds])
    lines += [
        "## Timings (this machine, shared 2 cores)",
        "",
        f"- detector call per 320 px view: HOG {mean_hog * 1000:.0f} ms, CNN {mean_cnn * 1000:.0f} ms",
        *[f"- render {label}: {s:.2f} s for {n} views (incl. loading and smoothing)" for label, s, n in render_seconds],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
