"""The bridge contract on the Python side: every request is checked against the JSON Schema
exported from src/engine/contract.ts before any work, and a broken one fails the reply (bad_input)
with one line naming the field."""

from __future__ import annotations

import json

from micanon import api

SESSION = {
    "reference": "/data/sub-01_T1w.nii.gz", "others": [], "methods": ["deface"], "atlas": "/atlas",
    "outputs": {"/data/sub-01_T1w.nii.gz": {"deface": "/work/out.nii.gz"}}, "dilate": 6, "robust": False, "remove_ears": False,
    "work_dir": "/work", "keep_work": False, "seed": 1, "reference_is_t1w": True,
}


def test_every_bridged_function_has_a_contract_and_every_contract_a_function():
    bridged = {name for name in dir(api) if not name.startswith("_") and getattr(getattr(api, name), "__wrapped__", None) is not None}
    assert bridged == set(api._CONTRACT)


def test_a_request_must_carry_every_field_the_engine_reads():
    assert api.check_request("anonymize_session", SESSION) is SESSION
    for field in ("dilate", "seed", "robust", "reference_is_t1w"):
        partial = {k: v for k, v in SESSION.items() if k != field}
        reply = json.loads(api.anonymize_session(json.dumps(partial)))
        assert not reply["ok"] and reply["error"]["kind"] == "bad_input"
        assert reply["error"]["message"] == f"anonymize_session request breaks the bridge contract at request: '{field}' is a required property"


def test_wrong_types_unknown_fields_and_non_objects_are_refused_naming_the_place():
    wrong = json.loads(api.anonymize_session(json.dumps({**SESSION, "methods": ["blur"]})))
    assert "at methods/0: 'blur' is not one of ['deface', 'reface', 'warpface']" in wrong["error"]["message"]
    extra = json.loads(api.atlas_info(json.dumps({"path": "/atlas", "dilate": 6})))
    assert not extra["ok"] and "Additional properties are not allowed ('dilate' was unexpected)" in extra["error"]["message"]
    not_object = json.loads(api.check_inputs(json.dumps(["a.nii"])))
    assert not not_object["ok"] and not_object["error"]["kind"] == "bad_input"
