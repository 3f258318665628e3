"""The only module the TypeScript bridge calls.

Every function takes one JSON string and returns one JSON string:
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"kind", "message", "traceback"}}``.
Strings cross pythonia as plain values, so no Python object proxies leak to the TS side and the
reply is validated there with a zod schema. Image arrays never cross: only paths and small dicts.
Every request is checked against the bridge contract first (contract.schema.json, exported from
src/engine/contract.ts): it arrives whole, so no function here supplies a default of its own.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import platform
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from micanon import __version__
from micanon.lifeline import bind_to_parent

# The engine dies with the CLI that started it, SIGKILL included (see micanon/lifeline.py).
LIFELINE = bind_to_parent()

_CONTRACT = json.loads((Path(__file__).with_name("contract.schema.json")).read_text(encoding="utf-8"))["calls"]


@functools.cache
def _request_validator(call: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_CONTRACT[call])


def check_request(call: str, request: Any) -> dict[str, Any]:
    """``request`` if it keeps the contract of ``call``; ValueError naming the first field that does not."""
    if call not in _CONTRACT:
        raise ValueError(f"{call}: not a call of the bridge contract")
    error = next(iter(sorted(_request_validator(call).iter_errors(request), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "request"
        raise ValueError(f"{call} request breaks the bridge contract at {where}: {error.message}")
    return request


_ERROR_KINDS: list[tuple[type[BaseException], str]] = [
    (FileNotFoundError, "input_missing"),
    (PermissionError, "cannot_write"),
    (ValueError, "bad_input"),
]


def _kind_of(exc: BaseException) -> str:
    for cls, kind in _ERROR_KINDS:
        if isinstance(exc, cls):
            return kind
    return "internal"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return " ".join(text.split())


def bridged(fn: Callable[[dict[str, Any]], Any]) -> Callable[[str], str]:
    """Make ``fn(request: dict) -> JSON-able`` callable with a JSON string, never raising."""

    @functools.wraps(fn)
    def wrapper(request_json: str = "{}") -> str:
        _imports_warmed()
        try:
            request = check_request(fn.__name__, json.loads(request_json) if request_json else {})
            return json.dumps({"ok": True, "result": fn(request)})
        except BaseException as exc:  # noqa: BLE001 - everything must come back as a reply
            return json.dumps(
                {
                    "ok": False,
                    "error": {
                        "kind": _kind_of(exc),
                        "type": exc.__class__.__name__,
                        "message": _one_line(exc),
                        "traceback": traceback.format_exc(),
                    },
                }
            )

    return wrapper


def _installed_version(module: str, distribution: str) -> str | None:
    """The installed distribution's version if ``module`` imports, else None.

    The distribution's metadata is the truth (face_recognition_models' own ``__version__`` still
    says 0.1.0 in its 0.3.0 release); importing proves the package is usable, not just present.
    """
    try:
        imported = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a broken install is reported, not raised
        return None
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(imported, "__version__", "unknown"))


@bridged
def versions(_request: dict[str, Any]) -> dict[str, Any]:
    """Versions of the interpreter and every engine dependency (None where it does not import)."""
    return {
        "micanon": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "packages": {
            name: _installed_version(module, distribution)
            for name, module, distribution in [
                ("antspyx", "ants", "antspyx"),
                ("nibabel", "nibabel", "nibabel"),
                ("numpy", "numpy", "numpy"),
                ("scipy", "scipy", "scipy"),
                ("pillow", "PIL", "pillow"),
                ("dlib", "dlib", "dlib-bin"),
                ("face_recognition_models", "face_recognition_models", "face-recognition-models"),
            ]
        },
    }


@bridged
def image_info(request: dict[str, Any]) -> dict[str, Any]:
    """Header facts of one NIfTI image (world space = the file's own scanner space)."""
    import nibabel as nib
    import numpy as np

    path = Path(request["path"])
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise ValueError(f"{path}: not a readable NIfTI image ({_one_line(exc)})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ValueError(f"{path}: not a NIfTI image ({type(img).__name__})")
    hdr = img.header
    # nibabel moves scaling from the loaded header into the array proxy (the header says NaN).
    slope, inter = getattr(img.dataobj, "slope", None), getattr(img.dataobj, "inter", None)
    _, qcode = img.get_qform(coded=True)
    _, scode = img.get_sform(coded=True)
    return {
        "path": str(path),
        "shape": [int(n) for n in img.shape],
        "zooms": [float(z) for z in hdr.get_zooms()],
        "dtype": str(np.dtype(hdr.get_data_dtype())),
        "affine": np.asarray(img.affine).round(6).tolist(),
        "qform_code": int(qcode) if qcode is not None else 0,
        "sform_code": int(scode) if scode is not None else 0,
        "scl_slope": None if slope is None else float(slope),
        "scl_inter": None if inter is None else float(inter),
        "orientation": "".join(nib.aff2axcodes(img.affine)),
    }


@bridged
def atlas_info(request: dict[str, Any]) -> dict[str, Any]:
    """Validate an atlas folder and describe it (roles -> files, kind, grid)."""
    from micanon.atlas.load import load_atlas

    atlas = load_atlas(request["path"])
    roles = {
        role: (str(getattr(atlas, role)) if getattr(atlas, role, None) else None)
        for role in ("template", "face_roi", "brain", "brain_neck", "face", "ears")
    }
    return {"path": str(request["path"]), "kind": atlas.kind, "roles": roles}


@bridged
def anonymize_session(request: dict[str, Any]) -> dict[str, Any]:
    """Anonymize one session: the reference T1w and every other image, by each method asked.

    All registration and native-space masks are computed once and shared; outputs are written
    to the paths given (temporary names chosen by the TS side, which renames them).
    """
    from micanon.atlas.load import load_atlas
    from micanon.session import anonymize_session as run_session

    atlas = load_atlas(request["atlas"])
    progress: list[str] = []
    result = run_session(
        request["reference"],
        request["others"],
        request["methods"],
        atlas,
        request["outputs"],
        dilate=float(request["dilate"]),
        robust=request["robust"],
        work_dir=request["work_dir"],
        keep_work=request["keep_work"],
        seed=request["seed"],
        version=__version__,
        log=progress.append,
        reference_is_t1w=request["reference_is_t1w"],
        remove_ears=request["remove_ears"],
    )
    result["log"] = progress
    return result


@bridged
def handshake(_request: dict[str, Any]) -> dict[str, Any]:
    """First call of every run: keep the engine's stdout clean, say which engine answered.

    pythonia talks over a separate IPC channel and hands the interpreter our own stdout;
    ITK and numpy warnings printed there would mix into the CLI's machine-readable output,
    so file descriptor 1 is pointed at stderr for the life of this process.
    """
    import os

    sys.stdout.flush()
    os.dup2(2, 1)
    _warm_imports()
    return {"micanon": __version__}


# The image stack (ANTsPy, SciPy, the QC's detectors) takes seconds to import. The first session
# would pay it before its brain extraction could start; imported in the background from the
# handshake on, it overlaps the CLI's BIDS validation and discovery instead. Every call waits for
# those imports to end first, so no two threads ever import at once (two threads entering an
# import cycle from both ends would deadlock).
_WARM_MODULES = ("micanon.session", "micanon.qc")
_WARMING: list = []


def _warm_imports() -> None:
    import threading

    def load() -> None:
        for module in _WARM_MODULES:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - the call that needs it reports the failure
                return

    thread = threading.Thread(target=load, name="warm-imports", daemon=True)
    _WARMING.append(thread)
    thread.start()


def _imports_warmed() -> None:
    while _WARMING:
        _WARMING.pop().join()


@bridged
def make_example(request: dict[str, Any]) -> dict[str, Any]:
    """Write the built-in example BIDS dataset (the atlas template on an oblique grid)."""
    from micanon.atlas.load import load_atlas
    from micanon.example import write_example_dataset

    atlas = load_atlas(request["atlas"])
    return write_example_dataset(request["root"], atlas.template)


@bridged
def qc_outputs(request: dict[str, Any]) -> dict[str, Any]:
    """QC every output of one participant session (before the pipeline renames them into place).

    Request: output_dir, bids_dir, subject, session, figures_dir, staging_dir (optional: the
    figure files are written there, named as in figures_dir, for the caller to move in), reference
    (the session's reference: input path and why it was chosen; optional) and items (input, output, output_name,
    method, the engine's brain counts, native brain_guard/face_roi mask paths, head_affine,
    registration); images are in their own scanner space. Writes the figures and returns
    {"records": [one QC record per item with its verdict, as src/engine/qc-record.ts validates], "timings"}.
    """
    from micanon.qc import QcRequest, check_outputs

    return check_outputs(QcRequest.from_json(request))


@bridged
def qc_image(request: dict[str, Any]) -> dict[str, Any]:
    """QC one image anonymized by any tool (``micanon qc``), against its original when given.

    Request: image, original (or null), method, atlas (folder), output_dir, figures_dir (inside
    output_dir), staging_dir (optional: the figure files are written there, named as in
    figures_dir, for the caller to move in), subject, session (labels naming the record),
    reference_is_t1w (the image registered to the atlas is a T1w); images in their own scanner
    space.
    Writes the figures and returns the QC record (see micanon.standalone.check_image).
    """
    from micanon.atlas.load import load_atlas
    from micanon.standalone import check_image

    progress: list[str] = []
    record = check_image(
        request["image"],
        request["original"],
        request["method"],
        load_atlas(request["atlas"]),
        output_dir=request["output_dir"],
        figures_dir=request["figures_dir"],
        staging_dir=request.get("staging_dir"),
        subject=request["subject"],
        session=request["session"],
        seed=request["seed"],
        log=progress.append,
        reference_is_t1w=request["reference_is_t1w"],
    )
    return {"record": record, "log": progress}


@bridged
def check_inputs(request: dict[str, Any]) -> dict[str, Any]:
    """Check input images before any work (micanon.inputs, one catalogue of problems).

    Request: {"paths": [str, ...]}. Returns {"images": [{"path", "ok", "errors", "warnings",
    "facts"}, ...]} in request order; errors/warnings are lists of {"code", "message"}. A bad or
    missing image is a per-image result (a missing file is the error INPUT_MISSING), never a
    failed reply; only a malformed request fails.
    """
    from micanon.inputs import check_image

    return {"images": [check_image(p).to_json() for p in request["paths"]]}


@bridged
def reidentify(request: dict[str, Any]) -> dict[str, Any]:
    """The group level's re-identification attack (micanon.attack, docs/identity.md).

    Request: qc_dir (the folder the records' render paths are relative to), records (QC records
    or their subject, session, input, method and renders), atlas (folder: its template is the
    distractor face; null for none). Reads the renders, renders the atlas template; writes
    nothing. Returns the rank-1 table per protocol and probe kind, one row per probe, the
    gallery, and whether the attack can speak on this dataset (``conclusive``, ``verdict``).
    """
    from micanon.atlas.load import load_atlas
    from micanon.attack import attack_dataset
    from micanon.qc import REPORT_VIEWS

    records = request["records"]
    atlas = request["atlas"]
    template = None if atlas is None else load_atlas(atlas).template
    return attack_dataset(records, request["qc_dir"], template, REPORT_VIEWS)
