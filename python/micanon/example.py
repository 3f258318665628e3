"""The built-in example: a small BIDS dataset made from the atlas template.

Real scans cannot ship with micanon, so the example head is the atlas template, resampled onto
an oblique 1.5 mm scanner grid through a known rigid transform (so registration has real work
to do), with a T1w and a T2w-like contrast. Sidecars carry fake identifying fields so that
scrubbing shows in the outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

#: The known rigid transform, scanner mm -> template mm (rotation in degrees about x, y, z).
EXAMPLE_ROTATION_DEG = (8.0, -5.0, 4.0)
EXAMPLE_SHIFT_MM = (3.0, -12.0, 20.0)
EXAMPLE_VOXEL_MM = 1.5

_FAKE_IDENTITY = {
    "PatientName": "Example^Person",
    "PatientID": "EX-0001",
    "PatientBirthDate": "19800101",
    "PatientSex": "O",
    "AcquisitionDateTime": "2024-01-02T10:11:12",
    "InstitutionName": "Example Hospital",
    "DeviceSerialNumber": "000000",
}


def _rotation(deg: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = np.deg2rad(deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def example_head(template_path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample the template onto the example's oblique scanner grid.

    Returns (t1w, t2w, affine): float arrays on a grid whose affine maps voxels to the
    example's own scanner space, which differs from template space by the known transform.
    """
    tpl = nib.load(str(template_path))
    data = np.asarray(tpl.dataobj, dtype=np.float32)
    scanner_to_template = np.eye(4)
    scanner_to_template[:3, :3] = _rotation(EXAMPLE_ROTATION_DEG)
    scanner_to_template[:3, 3] = EXAMPLE_SHIFT_MM
    # Scanner grid: same field of view as the template, coarser voxels, an oblique direction.
    extent = np.array(tpl.shape[:3]) * np.array(tpl.header.get_zooms()[:3])
    shape = np.ceil(extent / EXAMPLE_VOXEL_MM).astype(int)
    centre_tpl = tpl.affine @ np.r_[(np.array(tpl.shape[:3]) - 1) / 2, 1]
    centre_scanner = np.linalg.inv(scanner_to_template) @ centre_tpl
    affine = np.eye(4)
    affine[:3, :3] = np.diag([EXAMPLE_VOXEL_MM] * 3)
    affine[:3, 3] = centre_scanner[:3] - affine[:3, :3] @ ((shape - 1) / 2)
    vox_to_tpl_vox = np.linalg.inv(tpl.affine) @ scanner_to_template @ affine
    t1w = ndimage.affine_transform(data, vox_to_tpl_vox, output_shape=tuple(shape), order=1, cval=0.0)
    # The average's background is not zero: the head is what is brighter than 15 % of its robust max.
    head = t1w > 0.15 * np.percentile(t1w, 99.5)
    head = ndimage.binary_fill_holes(ndimage.binary_closing(head, iterations=2))
    labels, count = ndimage.label(head)
    if count > 1:
        head = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    t2w = np.where(head, t1w.max() * 1.1 - t1w, 0.0)  # inverted contrast inside the head
    return t1w, t2w.astype(np.float32), affine


def write_example_dataset(root: str | Path, template_path: str | Path) -> dict:
    """Write the example BIDS dataset under ``root``; returns its paths and the known transform."""
    root = Path(root)
    anat = root / "sub-example" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    t1w, t2w, affine = example_head(template_path)
    paths = {}
    for suffix, data in (("T1w", t1w), ("T2w", t2w)):
        scaled = np.clip(np.round(data / max(float(data.max()), 1e-6) * 4000), 0, 32767).astype(np.int16)
        img = nib.Nifti1Image(scaled, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        img.header.set_xyzt_units("mm", "sec")
        path = anat / f"sub-example_{suffix}.nii.gz"
        img.to_filename(str(path))
        sidecar = {"MagneticFieldStrength": 3, "Manufacturer": "Example", **_FAKE_IDENTITY}
        (anat / f"sub-example_{suffix}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
        paths[suffix] = str(path)
    (root / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "micanon built-in example (atlas template on an oblique grid)",
                "BIDSVersion": "1.10.0",
                "DatasetType": "raw",
                "License": "CC0",
            },
            indent=2,
        )
        + "\n"
    )
    (root / "participants.tsv").write_text("participant_id\tage\nsub-example\t35\n")
    return {
        "root": str(root),
        "images": paths,
        "rotation_deg": list(EXAMPLE_ROTATION_DEG),
        "shift_mm": list(EXAMPLE_SHIFT_MM),
    }
