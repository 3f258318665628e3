"""A BIDS dataset of persons A and B with stress copies as further sessions of the same person.

The group-level re-identification attack needs a dataset with more than one face; the only real
heads we have are A and B (../shared/data, licensed: the dataset is written outside the project
and never committed). A stress copy (``tests.stress``: the same voxels rotated in the scanner, or
resampled to thick slices) is the same person, so it is written as another session of that
subject, never as another subject: the attack's gallery holds persons, and a copy filed as a new
person would turn every match to its source into a false "miss".

``python -m tests.stress_dataset OUT_DIR`` (from python/) writes the dataset.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from tests.stress import CASES, load_source

# (subject, session, stress case): the case's head becomes that session's T1w
SESSIONS = [
    ("A", "01", "A"),
    ("A", "02", "A 1x1x4 mm slices"),
    ("B", "01", "B"),
    ("B", "02", "B rotated 30 deg"),
]


def write_dataset(out_dir: Path, sessions=SESSIONS) -> list[Path]:
    """Write ``out_dir`` as a raw BIDS dataset (T1w only, float32 images, no identifying sidecar
    fields); returns the images written, or [] when the shared data is absent."""
    cases = {case.name: case for case in CASES}
    written = []
    for subject, session, name in sessions:
        case = cases[name]
        head = load_source(case.source)
        if head is None:
            return []
        head = case.make(head)
        anat = out_dir / f"sub-{subject}" / f"ses-{session}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        path = anat / f"sub-{subject}_ses-{session}_T1w.nii.gz"
        image = nib.Nifti1Image(np.asarray(head.volume, np.float32), head.affine)
        image.set_qform(head.affine, code=1)
        image.set_sform(head.affine, code=1)
        nib.save(image, str(path))
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(
            json.dumps({"Modality": "MR", "StressCase": name}, indent=2) + "\n")
        written.append(path)
    (out_dir / "dataset_description.json").write_text(json.dumps({
        "Name": "persons A and B with stress copies as sessions (micanon's re-identification attack)",
        "BIDSVersion": "1.10.0",
        "DatasetType": "raw",
        "License": "CC BY-NC 4.0 (person A); CC0 (person B). Tests and development only.",
    }, indent=2) + "\n")
    (out_dir / "participants.tsv").write_text("participant_id\nsub-A\nsub-B\n")
    return written


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for path in write_dataset(Path(sys.argv[1])):
        print(path)
