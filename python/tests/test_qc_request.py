"""The qc_outputs request (micanon.qc.request): refused, naming the bad field, before any work."""

from __future__ import annotations

import json
from pathlib import Path

from micanon import api
from qc_fixtures import SUBJECT, item, synthetic  # noqa: F401 - fixtures


def test_a_request_with_an_unknown_method_or_a_path_outside_its_folder_is_refused(synthetic, tmp_path):
    def ask(bids_dir: Path, reference=None, **change) -> dict:
        entry = item(synthetic["t1w"], synthetic["t1w"], "deface")
        entry.update(change)
        return json.loads(api.qc_outputs(json.dumps({
            "output_dir": str(tmp_path), "bids_dir": str(bids_dir), "subject": SUBJECT, "session": None,
            "figures_dir": str(tmp_path / "figures"), "items": [entry], "reference": reference,
        })))

    refused = [ask(synthetic["bids"], method="blur"), ask(synthetic["bids"], output_name="../escape.nii.gz"),
               ask(tmp_path / "elsewhere"), ask(synthetic["bids"], {"input": str(tmp_path / "T1w.nii.gz"), "reason": "--t1w"}),
               ask(synthetic["bids"], {"input": str(synthetic["t1w"])})]
    for reply in refused:
        assert not reply["ok"] and reply["error"]["kind"] == "bad_input", reply
    assert "not inside" in refused[2]["error"]["message"]
    assert "reference.input" in refused[3]["error"]["message"] and "reference" in refused[4]["error"]["message"]
