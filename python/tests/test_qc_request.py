"""The qc_outputs request (micanon.qc.request): refused, naming the bad field, before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from micanon import api
from micanon.qc.request import QcRequest, reference_name
from qc_fixtures import SUBJECT, item, synthetic  # noqa: F401 - fixtures


def parse(method: str = "deface", reference: str | None = None, staging: str | None = None, **change) -> QcRequest:
    """A one-item request of a dataset at /d, parsed: ``change`` goes into the item, ``reference``
    is a --t1w reference's path, ``staging`` the request's staging_dir."""
    entry = {"input": "/d/sub-01/anat/sub-01_T1w.nii.gz", "output": "/w/out.nii", "output_name": "sub-01/anat/x.nii.gz",
             "method": method, "registration": {"flag": "ok"}, **change}
    request = {"output_dir": "/o", "bids_dir": "/d", "subject": "01", "session": None, "figures_dir": "/o/figures", "items": [entry]}
    if reference is not None:
        request["reference"] = {"input": reference, "reason": "--t1w"}
    if staging is not None:
        request["staging_dir"] = staging
    return QcRequest.from_json(request)


def test_a_request_with_an_unknown_method_or_a_path_outside_its_folder_is_refused(synthetic, tmp_path):
    def ask(bids_dir: Path, reference=None, **change) -> dict:
        entry = item(synthetic["t1w"], synthetic["t1w"], "deface")
        entry.update(change)
        return json.loads(api.qc_outputs(json.dumps({
            "output_dir": str(tmp_path), "bids_dir": str(bids_dir), "subject": SUBJECT, "session": None,
            "figures_dir": str(tmp_path / "figures"), "items": [entry], "reference": reference,
        })))

    refused = [ask(synthetic["bids"], method="blur"), ask(synthetic["bids"], output_name="../escape.nii.gz"),
               ask(tmp_path / "elsewhere"), ask(synthetic["bids"], {"input": "T1w.nii.gz", "reason": "--t1w"}),
               ask(synthetic["bids"], {"input": str(synthetic["t1w"])})]
    for reply in refused:
        assert not reply["ok"] and reply["error"]["kind"] == "bad_input", reply
    assert "not inside" in refused[2]["error"]["message"]
    assert "reference.input" in refused[3]["error"]["message"] and "reference" in refused[4]["error"]["message"]


def test_a_reference_from_outside_the_dataset_is_named_by_its_absolute_path():
    """``--t1w`` may name a T1w anywhere: the session is registered through it, QC runs, and the
    records name it by its absolute path (inside the dataset: relative to bids_dir, as inputs are)."""
    outside = parse(reference="/elsewhere/sub-01_T1w.nii.gz").reference
    assert outside.input == Path("/elsewhere/sub-01_T1w.nii.gz")
    assert reference_name(outside.input, Path("/d")) == "/elsewhere/sub-01_T1w.nii.gz"
    assert reference_name(parse(reference="/d/sub-01/anat/sub-01_T1w.nii.gz").reference.input, Path("/d")) == "sub-01/anat/sub-01_T1w.nii.gz"


def test_an_items_atlas_head_is_an_absolute_path_or_null():
    """``atlas_head`` (the atlas head on the input's grid, for reface and warpface) is optional,
    parsed to a path, and refused when relative, naming the field."""
    def reface_item(**change):
        return parse("reface", **change).items[0]

    assert reface_item().atlas_head is None and reface_item(atlas_head=None).atlas_head is None
    assert reface_item(atlas_head="/w/qc_reference_desc-atlasHead_T1w.nii").atlas_head == Path("/w/qc_reference_desc-atlasHead_T1w.nii")
    with pytest.raises(ValueError, match=r"items\[0\]\.atlas_head"):
        reface_item(atlas_head="qc_reference_desc-atlasHead_T1w.nii")


def test_an_items_warp_summary_is_two_numbers_or_null_and_the_staging_folder_absolute():
    """``warp`` (warpface: the face warp's reach and smallest Jacobian) is optional and refused
    when malformed, naming the field; ``staging_dir`` (where the figures are drawn) likewise."""
    assert parse("warpface").items[0].warp is None and parse("warpface").write_dir == Path("/o/figures")
    assert parse("warpface", warp={"max_mm": 18, "min_jacobian": 0.1}).items[0].warp == {"max_mm": 18.0, "min_jacobian": 0.1}
    for bad in ({"max_mm": 18}, {"max_mm": "18", "min_jacobian": 0.1}, [18, 0.1]):
        with pytest.raises(ValueError, match=r"items\[0\]\.warp"):
            parse("warpface", warp=bad)
    assert parse("warpface", staging="/w/qc-figures").write_dir == Path("/w/qc-figures")
    with pytest.raises(ValueError, match="staging_dir"):
        parse("warpface", staging="qc-figures")
