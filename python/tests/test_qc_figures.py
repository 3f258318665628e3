"""QC's figures (micanon.qc.figures): an input with no head surface is shown as projections."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
from PIL import Image

from qc_fixtures import ANAT, SESSION, SUBJECT, item, run_qc


def test_an_image_without_a_head_surface_is_shown_as_projections(tmp_path):
    """A TOF-like image: two thin bright vessels in an empty field, one 15 mm off the midline. A
    mid-sagittal slice would show nothing of it; the figures are MIPs and say so."""
    bids = tmp_path / "bids"
    (bids / ANAT).mkdir(parents=True)
    volume = np.zeros((80, 80, 60), np.float32)
    volume[55, 10:70, 30] = 300.0  # off the midline, front to back
    volume[40, 40, 5:55] = 200.0  # on the midline, foot to head
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-40, -40, -30]
    angio = bids / ANAT / f"sub-{SUBJECT}_ses-{SESSION}_angio.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), str(angio))
    out = tmp_path / "angio_copy.nii.gz"
    shutil.copy(angio, out)
    record = run_qc(tmp_path, bids, [item(angio, out, "deface")])["records"][0]
    assert "no head surface" in record["checks"]["face"]["detail"]
    assert record["renders"].get("projection") == "mip"
    for name in ("input_sagittal", "output_sagittal"):
        picture = np.asarray(Image.open(tmp_path / record["renders"]["slices"][name]).convert("L"))
        rows, cols = np.nonzero(picture > 100)
        # both vessels, each as a line: the front-to-back one spans ~60 columns, the other ~50 rows
        assert np.ptp(cols) >= 55 and np.ptp(rows) >= 45, name
