"""Shared by the QC tests: the record's shape (held to src/engine/qc-record.ts's qcRepliesSchema,
the one schema), one qc_outputs call through the bridge, and the heads they check: a synthetic head
(made in code, no face the CNN recognises) and the atlas template (the pydeface average head,
which the CNN does recognise), as BIDS T1w files with their masks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage as ndi

from conftest import face_roi_of, grid_points, make_subject, real_atlas
from micanon import api
from micanon.io import read_image, write_like

SUBJECT, SESSION = "01", "01"
ANAT = f"sub-{SUBJECT}/ses-{SESSION}/anat"


# ----------------------------------------------------------------------------- the record's shape

REPO = Path(__file__).resolve().parents[2]
CHECK_REPLY = REPO / "scripts" / "check-qc-reply.mjs"


def assert_qc_reply(result: dict) -> None:
    """Hold a qc_outputs result to the one QC record schema (qcRepliesSchema, src/engine/qc-record.ts,
    the schema the pipeline parses it with) through node, then to what a schema cannot say."""
    if not (REPO / "dist" / "engine" / "qc-record.js").is_file():
        pytest.fail("the QC record schema is not compiled: run `npm run build` (the test command does)")
    checked = subprocess.run(["node", str(CHECK_REPLY)], input=json.dumps(result), capture_output=True, text=True)
    assert checked.returncode == 0, f"the QC reply breaks qcRepliesSchema:\n{checked.stderr}"
    for record in result["records"]:
        assert record["status"] == "FAILED" or not record["hard"]  # only a failure can be hard
        if "atlas" in record["renders"]:  # reface, warpface: the atlas face in the input's camera
            assert record["method"] != "deface"
        assert json.loads(json.dumps(record)) == record  # survives JSON as the bridge sends it


# ----------------------------------------------------------------------------- helpers


def run_qc(output_dir: Path, bids_dir: Path, items: list[dict], subject=SUBJECT, session=SESSION, reference=None,
           staging_dir: Path | None = None) -> dict:
    """One qc_outputs call through the bridge (``reference``: the session's, as the pipeline sends it;
    ``staging_dir``: where the figures are drawn, as the pipeline asks, for it to move them in)."""
    request = {
        "output_dir": str(output_dir), "bids_dir": str(bids_dir), "subject": subject, "session": session,
        "figures_dir": str(output_dir / f"sub-{subject}" / "figures"), "reference": reference, "items": items,
    }
    if staging_dir is not None:
        request["staging_dir"] = str(staging_dir)
    reply = json.loads(api.qc_outputs(json.dumps(request)))
    assert reply["ok"], reply.get("error", {}).get("traceback")
    result = reply["result"]
    assert len(result["records"]) == len(items) == len(result["timings"]["items"])
    assert_qc_reply(result)
    for record in result["records"]:
        for group in ("input", "output", "slices"):
            for relative in record["renders"][group].values():
                if staging_dir is None:
                    assert (output_dir / relative).is_file(), relative
                else:  # drawn in the staging folder under the name the record cites, nothing in place yet
                    assert (staging_dir / Path(relative).name).is_file() and not (output_dir / relative).exists(), relative
    return result


def item(input_path: Path, output_path: Path, method: str, **extra) -> dict:
    entry = {
        "input": str(input_path), "output": str(output_path),
        "output_name": f"{ANAT}/{output_path.name}", "method": method,
        "brain_voxels_changed": 0, "guard_voxels": 1000, "brain_guard": None, "face_roi": None,
        "head_affine": None, "registration": {"metric": "ncc", "value": 0.9, "flag": "ok"},
    }
    entry.update(extra)
    return entry


def save_mask(path: Path, mask: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), str(path))
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A BIDS folder with the synthetic head (int16 with scaling, 3 mm), its guard and face ROI,
    and the same head with its face ROI zeroed ("faceless": the CNN finds no face on it)."""
    root = tmp_path_factory.mktemp("qc-synthetic")
    bids, work = root / "bids", root / "work"
    (bids / ANAT).mkdir(parents=True)
    work.mkdir()
    data, affine, parts = make_subject()
    img = nib.Nifti1Image(data, affine)
    img.set_data_dtype(np.int16)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    t1w = bids / ANAT / f"sub-{SUBJECT}_ses-{SESSION}_T1w.nii.gz"
    img.to_filename(str(t1w))
    stored = read_image(t1w)
    brain_guard = ndi.binary_dilation(parts["brain"] | parts["ventricle"], iterations=1)
    face_roi = face_roi_of(grid_points(data.shape, affine)) & ~brain_guard
    faceless = bids / ANAT / f"sub-{SUBJECT}_ses-{SESSION}_acq-faceless_T1w.nii.gz"
    write_like(stored, defaced(stored, face_roi), faceless, "micanon test input without a face")
    return {
        "root": root, "bids": bids, "t1w": t1w, "stored": stored, "faceless": faceless,
        "guard": save_mask(work / "guard.nii.gz", brain_guard, affine), "guard_mask": brain_guard,
        "face_roi": save_mask(work / "face.nii.gz", face_roi, affine), "face_mask": face_roi,
    }


def defaced(stored, face_mask: np.ndarray) -> np.ndarray:
    raw = stored.raw.copy()
    raw[face_mask] = 0
    return raw


# ----------------------------------------------------------------------------- the average head


def on_coarse_grid(path: Path, factor: int = 2, order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """An atlas image on a 2 mm grid: rendering stays fast and the CNN still finds the face (7 of 9 views)."""
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, np.float32)
    if order:
        data = ndi.gaussian_filter(data, 0.42 * factor)
    else:
        data = ndi.maximum_filter(data, size=factor)  # a mask keeps every voxel it touched
    return ndi.zoom(data, 1 / factor, order=order, grid_mode=False), img.affine @ np.diag([factor, factor, factor, 1.0])


@pytest.fixture(scope="module")
def average_head(tmp_path_factory):
    """The atlas template (pydeface's average head, whole face) as a 2 mm BIDS T1w, with masks."""
    atlas = real_atlas()
    root = tmp_path_factory.mktemp("qc-average")
    bids = root / "bids"
    (bids / ANAT).mkdir(parents=True)
    template, affine = on_coarse_grid(atlas.template)
    t1w = bids / ANAT / f"sub-{SUBJECT}_ses-{SESSION}_T1w.nii.gz"
    img = nib.Nifti1Image(template, affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    img.to_filename(str(t1w))
    brain = on_coarse_grid(atlas.brain, order=0)[0] > 0.5
    guard = ndi.binary_dilation(brain, iterations=2)
    face_roi = (on_coarse_grid(atlas.face_roi, order=0)[0] > 0.5) & ~guard
    return {
        "bids": bids, "t1w": t1w, "stored": read_image(t1w), "face_mask": face_roi,
        "guard": save_mask(root / "guard.nii.gz", guard, affine), "face_roi": save_mask(root / "face.nii.gz", face_roi, affine),
    }
