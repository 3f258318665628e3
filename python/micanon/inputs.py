"""Input checks: every image is checked here, before any work, against one catalogue.

Each problem micanon can find in an input image has one entry in :data:`CATALOGUE` (a data
table, like the BIDS validator's issue list): a stable code, whether it is an error (the image
is refused; the TypeScript side exits 65 "bad data", or 66 for ``INPUT_MISSING``) or a warning
(the image is processed and the warning recorded), and a one-line message template that names
the file, says what is wrong and what to do.

Checks run cheapest first and stop at the first stage that finds an error:

1. the file: exists, is readable, is named ``.nii``/``.nii.gz`` and is (or is not) gzip;
2. the raw header bytes: size, NIfTI-1/2 magic, dimensions, data type, voxel sizes (parsed with
   nibabel's header record layout, so none of nibabel's load-time "fixes" hides a field);
3. the header as nibabel reads it (``nib.load``, which reads only the header): the affine
   nibabel chooses (sform when ``sform_code > 0``, else qform), qform/sform agreement;
4. the voxel data, read once as a stream, one volume at a time (at most :data:`CHUNK_BYTES` in
   memory): truncation, gzip corruption, NaN/inf. An uncompressed integer image is checked
   for truncation by its size alone and not read.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

# A spatial axis shorter than this is refused: registration, the face search and the QC
# figures all need some extent on every axis, and a "3D" image with 1-7 slices is a 2D
# localizer or a slab that cannot show a face.
MIN_AXIS_VOXELS = 8

# qform and sform "disagree" when they place any voxel of the field of view more than this far
# apart, or their rotations differ by more than this angle. Float32 storage of the same matrix
# agrees to ~0.01 mm, so these thresholds only catch real disagreements.
QFORM_SFORM_TOLERANCE_MM = 1.0
QFORM_SFORM_TOLERANCE_DEG = 1.0

# Columns of the 3x3 part are treated as linearly dependent (a singular affine) when the
# determinant is below this fraction of the product of the column lengths (|sin| of the angle
# between a column and the plane of the other two, roughly).
SINGULAR_RELATIVE_DET = 1e-6

# Largest piece of voxel data held in memory at once while scanning for NaN/inf.
CHUNK_BYTES = 32 * 1024 * 1024

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One catalogue entry: a stable code, its severity and its one-line message template.

    ``template`` is filled with ``str.format``: ``{path}`` always, other fields as listed in
    ``fields``. The TypeScript side keys on ``code``; the message is for people.
    """

    code: str
    severity: str
    template: str
    fields: tuple[str, ...] = ()


# The catalogue. Order is the order the checks run in. Messages: "<file>: what is wrong; what to do".
CATALOGUE: dict[str, Problem] = {
    p.code: p
    for p in [
        # -- the file ------------------------------------------------------------------------
        Problem("INPUT_MISSING", ERROR,
                "{path}: no such file; check the path (and that a symbolic link's target exists)"),
        Problem("INPUT_UNREADABLE", ERROR,
                "{path}: cannot be opened ({detail}); check it is a file and micanon may read it",
                ("detail",)),
        Problem("BAD_EXTENSION", ERROR,
                "{path}: not named .nii or .nii.gz; micanon reads single-file NIfTI images only, "
                "convert the image (e.g. with dcm2niix) and name it .nii or .nii.gz"),
        Problem("NOT_GZIP", ERROR,
                "{path}: named .nii.gz but not gzip-compressed; rename it to .nii if it is an "
                "uncompressed NIfTI, or re-export it"),
        Problem("UNEXPECTED_GZIP", ERROR,
                "{path}: gzip-compressed but named .nii; rename it to .nii.gz"),
        # The file is cut short: in the header or the voxel data; found wherever it shows.
        Problem("TRUNCATED", ERROR,
                "{path}: the file is incomplete ({detail}); it is damaged or was copied only in "
                "part, copy or convert it again", ("detail",)),
        Problem("CORRUPT_DATA", ERROR,
                "{path}: the gzip-compressed data is damaged ({detail}); copy or convert it again",
                ("detail",)),
        # -- the header bytes ----------------------------------------------------------------
        Problem("BAD_MAGIC", ERROR,
                "{path}: not a NIfTI-1 or NIfTI-2 image ({detail}); check the file is a NIfTI "
                "image and convert it if it is another format", ("detail",)),
        Problem("NIFTI_PAIR", ERROR,
                "{path}: the header of a .hdr/.img pair, not a single-file NIfTI; convert it to "
                "a single .nii.gz (e.g. fslchfiletype NIFTI_GZ or nibabel)"),
        Problem("HEADER_UNREADABLE", ERROR,
                "{path}: the NIfTI header cannot be read ({detail}); the file is damaged or was "
                "written by a faulty tool, convert it again", ("detail",)),
        Problem("TOO_FEW_DIMENSIONS", ERROR,
                "{path}: a {ndim}D image (shape {shape}), micanon needs a 3D (or 4D) image; a "
                "single slice cannot be anonymized, give the full 3D acquisition",
                ("ndim", "shape")),
        Problem("AXIS_TOO_SMALL", ERROR,
                "{path}: shape {shape} has {n} voxel(s) along axis {axis}, micanon needs at "
                "least {minimum} on every spatial axis; give the full 3D acquisition",
                ("shape", "n", "axis", "minimum")),
        Problem("UNSUPPORTED_DTYPE", ERROR,
                "{path}: data type {dtype} is not supported (micanon accepts integer and real "
                "float images, not complex, RGB/RGBA or binary); convert it to a scalar image "
                "such as int16 or float32", ("dtype",)),
        # -- the header as nibabel reads it ----------------------------------------------------
        Problem("ZERO_VOXEL_SIZE", ERROR,
                "{path}: voxel size {zooms} mm in the header (pixdim) is zero or not finite; "
                "fix the voxel size in the header, e.g. by converting the image again",
                ("zooms",)),
        Problem("SINGULAR_AFFINE", ERROR,
                "{path}: the voxel-to-world matrix ({source}) is {problem}, so voxels have no "
                "position in space; fix the {source} in the header", ("source", "problem")),
        Problem("NO_ORIENTATION", WARNING,
                "{path}: neither qform nor sform is set (both codes 0), so the orientation is "
                "unknown and micanon assumes voxel sizes only (left-right may be wrong); set "
                "the qform/sform, e.g. by converting the image again"),
        Problem("SPATIAL_UNITS", WARNING,
                "{path}: voxel sizes are stored in {unit}, micanon reads them as mm as nibabel "
                "does; rescale the header if distances look wrong", ("unit",)),
        Problem("QFORM_SFORM_DISAGREE", WARNING,
                "{path}: qform and sform disagree by {degrees:.1f} degrees and up to {mm:.1f} mm "
                "in the field of view; micanon uses the {used} (as nibabel does), check the "
                "{used} is the right one", ("degrees", "mm", "used")),
        Problem("FOUR_D", WARNING,
                "{path}: {volumes} volumes (shape {shape}); each volume is anonymized with the "
                "same masks, check the head does not move between volumes",
                ("volumes", "shape")),
        # -- the voxel data --------------------------------------------------------------------
        # A check itself failed on this file (an engine bug or a header no library expects).
        Problem("CHECK_FAILED", ERROR,
                "{path}: micanon could not check this image ({detail}); report this with the "
                "file's header (e.g. the output of nib-ls)", ("detail",)),
        Problem("NON_FINITE", ERROR,
                "{path}: {count} voxel(s) are NaN or infinite ({nan} NaN, {inf} inf, in "
                "{volumes} volume(s)); micanon refuses such images, replace them with finite "
                "values (e.g. 0) and rerun", ("count", "nan", "inf", "volumes")),
    ]
}


def message(code: str, path: str | os.PathLike[str], **values: Any) -> dict[str, str]:
    """The issue ``{"code", "message"}`` of catalogue entry ``code`` for ``path`` (one line).

    Library words passed as ``detail`` are squeezed to one line; the path keeps its spelling
    except for line breaks, so the message stays one line and still names the file.
    """
    problem = CATALOGUE[code]
    missing = set(problem.fields) - set(values)
    if missing:
        raise KeyError(f"{code}: missing message fields {sorted(missing)}")
    values = {k: (_one_line(v) if isinstance(v, (str, BaseException)) else v) for k, v in values.items()}
    name = str(path).replace("\r", "\\r").replace("\n", "\\n")
    return {"code": code, "message": problem.template.format(path=name, **values)}


def _one_line(value: object) -> str:
    return " ".join(str(value).split()) or type(value).__name__


@dataclass
class InputCheck:
    """The verdict on one input image.

    ``errors``/``warnings`` are lists of ``{"code", "message"}`` (catalogue entries);
    ``facts`` always holds the same keys (None where the check stopped before learning them):
    format ('nifti1'|'nifti2'), compressed, shape, zooms (header voxel size of the spatial axes,
    mm), dtype, volumes, affine_source ('sform'|'qform'|'none'), qform_code, sform_code,
    non_finite (count of NaN/inf voxels, 0 for integer images, None when not read).
    """

    path: str
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(FACT_KEYS))

    @property
    def ok(self) -> bool:
        """True when the image may be processed (warnings allowed)."""
        return not self.errors

    def add(self, code: str, **values: Any) -> None:
        """Record catalogue entry ``code`` as an error or a warning, by its severity."""
        issue = message(code, self.path, **values)
        (self.errors if CATALOGUE[code].severity == ERROR else self.warnings).append(issue)

    def to_json(self) -> dict[str, Any]:
        """The JSON-able record check_inputs returns: path, ok, errors, warnings, facts."""
        return {"path": self.path, "ok": self.ok, "errors": self.errors, "warnings": self.warnings,
                "facts": self.facts}


FACT_KEYS = ("format", "compressed", "shape", "zooms", "dtype", "volumes", "affine_source",
             "qform_code", "sform_code", "non_finite")

_GZIP_MAGIC = b"\x1f\x8b"
_UNITS = {1: "metres", 3: "micrometres"}  # NIfTI xyz units other than mm (2) and unknown (0)


def check_image(path: str | os.PathLike[str]) -> InputCheck:
    """Check one input image; returns its :class:`InputCheck` (never raises for a bad image).

    Stops after the first stage that finds an error, so a damaged file gets one clear error
    rather than a cascade of follow-on ones.
    """
    check = InputCheck(path=str(path))
    stages = (_check_file, _check_header_bytes, _check_geometry, _check_data)
    state: dict[str, Any] = {}
    for stage in stages:
        try:
            stage(check, state)
        except Exception as exc:  # noqa: BLE001 - one odd file must not sink the others' checks
            check.add("CHECK_FAILED", detail=f"{type(exc).__name__}: {exc}")
        if check.errors:
            break
    return check


def check_images(paths: list[str]) -> list[InputCheck]:
    """Check each path in order; returns one InputCheck per path."""
    return [check_image(p) for p in paths]


# -- stage 1: the file -------------------------------------------------------------------------


def _check_file(check: InputCheck, state: dict[str, Any]) -> None:
    path = check.path
    if not os.path.exists(path):  # a dangling symbolic link is missing too
        check.add("INPUT_MISSING")
        return
    name = Path(path).name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        check.add("BAD_EXTENSION")
        return
    try:
        with open(path, "rb") as handle:
            start = handle.read(2)
    except OSError as exc:  # a folder, no permission, an I/O error
        check.add("INPUT_UNREADABLE", detail=exc.strerror or exc)
        return
    compressed = start == _GZIP_MAGIC
    if name.endswith(".gz") and not compressed:
        check.add("NOT_GZIP")
    elif not name.endswith(".gz") and compressed:
        check.add("UNEXPECTED_GZIP")
    check.facts["compressed"] = compressed
    state["compressed"] = compressed


def _open(path: str, compressed: bool):
    # The stdlib gzip reader (what nibabel uses without indexed_gzip) raises EOFError on a cut
    # stream and BadGzipFile on a bad CRC, which is what tells truncation from corruption.
    return gzip.open(path, "rb") if compressed else open(path, "rb")


# -- stage 2: the header bytes -----------------------------------------------------------------


def _check_header_bytes(check: InputCheck, state: dict[str, Any]) -> None:
    try:
        with _open(check.path, state["compressed"]) as stream:
            raw = stream.read(540)
    except EOFError as exc:
        check.add("TRUNCATED", detail=f"the header is cut short: {exc}")
        return
    except (OSError, zlib.error) as exc:  # BadGzipFile is an OSError
        check.add("CORRUPT_DATA", detail=exc)
        return
    if len(raw) < 4:
        check.add("TRUNCATED", detail=f"{len(raw)} bytes, too short for a NIfTI header")
        return
    # sizeof_hdr (348 for NIfTI-1, 540 for NIfTI-2) also tells the byte order.
    kinds = {(348, "<"), (540, "<"), (348, ">"), (540, ">")}
    found = [(size, order) for size, order in kinds if int(np.frombuffer(raw[:4], order + "i4")[0]) == size]
    if not found:
        check.add("BAD_MAGIC", detail="header size field is not 348 or 540")
        return
    size, order = found[0]
    if len(raw) < size:
        check.add("TRUNCATED", detail=f"the header is cut short: {len(raw)} of {size} bytes")
        return
    record_dtype = (nib.nifti1.header_dtype if size == 348 else nib.nifti2.header_dtype).newbyteorder(order)
    hdr = np.frombuffer(raw[:size], dtype=record_dtype)[0]
    # From the bytes, not the record: numpy's fixed-length strings drop the trailing NULs.
    magic = raw[344:348] if size == 348 else raw[4:12]
    if size == 348 and magic == b"ni1\x00":
        check.add("NIFTI_PAIR")
        return
    if magic not in (b"n+1\x00", b"n+2\x00\r\n\x1a\n"):
        check.add("BAD_MAGIC", detail=f"magic {magic!r}")
        return
    check.facts["format"] = "nifti1" if size == 348 else "nifti2"
    ndim = int(hdr["dim"][0])
    if not 1 <= ndim <= 7:
        check.add("HEADER_UNREADABLE", detail=f"dim[0] = {ndim}, must be 1 to 7")
        return
    full_shape = [int(n) for n in hdr["dim"][1:ndim + 1]]
    if any(n < 0 for n in full_shape):
        check.add("HEADER_UNREADABLE", detail=f"negative dimension in shape {full_shape}")
        return
    # Trailing singleton axes beyond the third carry nothing: (x, y, z, 1) is a 3D image.
    shape = list(full_shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    check.facts["shape"] = full_shape
    volumes = math.prod(shape[3:]) if len(shape) > 3 else 1
    check.facts["volumes"] = volumes
    code = int(hdr["datatype"])
    try:
        dtype = np.dtype(nib.nifti1.data_type_codes.dtype[code])
    except KeyError:
        check.add("UNSUPPORTED_DTYPE", dtype=f"code {code} (unknown to NIfTI)")
        return
    label = nib.nifti1.data_type_codes.label[code]
    check.facts["dtype"] = label
    if len(shape) < 3:
        check.add("TOO_FEW_DIMENSIONS", ndim=len(shape), shape=_shape_text(full_shape))
        return
    for axis, n in enumerate(shape[:3]):
        if n < MIN_AXIS_VOXELS:
            check.add("AXIS_TOO_SMALL", shape=_shape_text(full_shape), n=n, axis=axis,
                      minimum=MIN_AXIS_VOXELS)
            return
    # Integers and real floats only: complex has no single intensity, RGB/RGBA are structured
    # records (no arithmetic), binary (code 1) has no numpy dtype nibabel can read.
    if dtype.kind not in "iuf" or dtype.fields is not None:
        check.add("UNSUPPORTED_DTYPE", dtype=label)
        return
    vox_offset = float(hdr["vox_offset"])
    if not np.isfinite(vox_offset) or vox_offset < size:
        check.add("HEADER_UNREADABLE", detail=f"vox_offset {vox_offset:g} points inside the header")
        return
    state.update(dtype=dtype.newbyteorder(order), shape=shape, volumes=volumes, vox_offset=int(vox_offset))
    # pixdim as stored, checked before nibabel loads the header: its loader silently "fixes"
    # zero voxel sizes to 1 mm, and the engine would then work on a guessed grid.
    zooms = np.asarray(hdr["pixdim"][1:4], dtype=float)
    check.facts["zooms"] = [_json_float(z) for z in zooms]
    if not np.all(np.isfinite(zooms)) or np.any(zooms == 0):
        check.add("ZERO_VOXEL_SIZE", zooms=_zooms_text(zooms))
        return
    if volumes > 1:
        check.add("FOUR_D", volumes=volumes, shape=_shape_text(full_shape))


def _shape_text(shape: list[int]) -> str:
    return "x".join(str(n) for n in shape)


# -- stage 3: geometry, as nibabel reads it ----------------------------------------------------


def _check_geometry(check: InputCheck, state: dict[str, Any]) -> None:
    try:
        img = nib.load(check.path)  # reads the header (and extensions) only
    except EOFError as exc:
        check.add("TRUNCATED", detail=f"the header is cut short: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - nibabel raises several types for bad headers
        check.add("HEADER_UNREADABLE", detail=exc)
        return
    hdr = img.header
    q_code, s_code = int(hdr["qform_code"]), int(hdr["sform_code"])
    check.facts["qform_code"], check.facts["sform_code"] = q_code, s_code
    # nibabel's rule (Nifti1Header.get_best_affine): sform if coded, else qform if coded, else a
    # bare scaling from pixdim. micanon uses img.affine, so it follows the same rule.
    source = "sform" if s_code > 0 else "qform" if q_code > 0 else "none"
    check.facts["affine_source"] = source
    affine = np.asarray(img.affine, dtype=float)
    problem = _affine_problem(affine)
    if problem:
        check.add("SINGULAR_AFFINE", source=source if source != "none" else "pixdim affine", problem=problem)
        return
    if source == "none":
        check.add("NO_ORIENTATION")
    unit = _UNITS.get(int(hdr["xyzt_units"]) & 0x07)
    if unit:
        check.add("SPATIAL_UNITS", unit=unit)
    if q_code > 0 and s_code > 0:
        qform = np.asarray(hdr.get_qform(), dtype=float)
        # A qform that is not finite cannot be compared; micanon does not use it (the sform
        # wins), so it is left alone rather than reported as "nan degrees".
        if _affine_problem(qform) is None:
            degrees, mm = qform_sform_difference(qform, affine, state["shape"][:3])
            if degrees > QFORM_SFORM_TOLERANCE_DEG or mm > QFORM_SFORM_TOLERANCE_MM:
                check.add("QFORM_SFORM_DISAGREE", degrees=degrees, mm=mm, used=source)


def _json_float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _zooms_text(zooms: np.ndarray) -> str:
    return " x ".join(f"{z:g}" for z in zooms)


def _affine_problem(affine: np.ndarray) -> str | None:
    """Why ``affine`` cannot place voxels in space ('not finite', 'singular'), else None."""
    if not np.all(np.isfinite(affine)):
        return "not finite (NaN or infinite entries)"
    lengths = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if np.any(lengths == 0):
        return "singular (a zero column: zero voxel size)"
    if abs(np.linalg.det(affine[:3, :3])) <= SINGULAR_RELATIVE_DET * float(np.prod(lengths)):
        return "singular (its axes are not independent)"
    return None


def qform_sform_difference(qform: np.ndarray, sform: np.ndarray, shape: list[int]) -> tuple[float, float]:
    """How far two voxel-to-world matrices disagree on a grid of ``shape``: (degrees, mm).

    degrees: angle of the rotation between their orientations (180 when one is a mirror image
    of the other); mm: largest distance between the two world positions of one voxel in the
    field of view, which for affine maps is reached at a corner of the grid.
    """
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                        for k in (0, shape[2] - 1)]).T
    mm = float(np.max(np.linalg.norm((qform @ corners - sform @ corners)[:3], axis=0)))
    rq, rs = _rotation(qform[:3, :3]), _rotation(sform[:3, :3])
    if np.linalg.det(rq) * np.linalg.det(rs) < 0:
        return 180.0, mm
    cos = (np.trace(rq.T @ rs) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))), mm


def _rotation(matrix: np.ndarray) -> np.ndarray:
    # The orthogonal factor of the polar decomposition: the orientation without scale or shear.
    u, _, vt = np.linalg.svd(matrix)
    return u @ vt


# -- stage 4: the voxel data -------------------------------------------------------------------


def _check_data(check: InputCheck, state: dict[str, Any]) -> None:
    dtype: np.dtype = state["dtype"]
    shape: list[int] = state["shape"]
    volumes: int = state["volumes"]
    voxels_per_volume = math.prod(shape[:3])
    needed = state["vox_offset"] + voxels_per_volume * volumes * dtype.itemsize
    is_float = dtype.kind == "f"
    if not state["compressed"]:
        size = os.path.getsize(check.path)
        if size < needed:
            check.add("TRUNCATED", detail=f"{size} bytes, the header needs {needed}")
            return
        if not is_float:
            check.facts["non_finite"] = 0  # integers cannot be NaN or inf; no need to read
            return
    counts = _scan(check, state, voxels_per_volume, volumes, is_float)
    if counts is None:
        return
    nan, inf, bad_volumes = counts
    check.facts["non_finite"] = nan + inf
    if nan + inf:
        check.add("NON_FINITE", count=nan + inf, nan=nan, inf=inf, volumes=bad_volumes)


def _scan(check: InputCheck, state: dict[str, Any], voxels_per_volume: int, volumes: int,
          is_float: bool) -> tuple[int, int, int] | None:
    """Read the voxel data once, volume by volume in chunks; (NaN, inf, volumes with either).

    Reads a gzip stream to its end so its length and CRC are verified. Returns None after
    recording TRUNCATED or CORRUPT_DATA.
    """
    dtype: np.dtype = state["dtype"]
    per_chunk = max(1, CHUNK_BYTES // dtype.itemsize)
    buffer = bytearray(min(per_chunk, voxels_per_volume) * dtype.itemsize)
    nan = inf = bad_volumes = 0
    read = 0
    try:
        with _open(check.path, state["compressed"]) as stream:
            _skip(stream, state["vox_offset"])
            for _ in range(volumes):
                volume_bad = 0
                left = voxels_per_volume
                while left:
                    n = min(left, per_chunk)
                    view = memoryview(buffer)[: n * dtype.itemsize]
                    got = _read_into(stream, view)
                    read += got
                    if got < len(view):
                        expected = voxels_per_volume * volumes * dtype.itemsize
                        check.add("TRUNCATED", detail=f"{read} of {expected} bytes of voxel data")
                        return None
                    if is_float:
                        values = np.frombuffer(view, dtype=dtype)
                        finite = np.isfinite(values)
                        if not finite.all():
                            bad = values[~finite]
                            n_nan = int(np.count_nonzero(np.isnan(bad)))
                            nan += n_nan
                            inf += bad.size - n_nan
                            volume_bad = 1
                    left -= n
                bad_volumes += volume_bad
            if state["compressed"]:
                while stream.read(1 << 20):  # to the end: gzip checks length and CRC there
                    pass
    except EOFError as exc:
        check.add("TRUNCATED", detail=exc)
        return None
    except (gzip.BadGzipFile, zlib.error) as exc:
        check.add("CORRUPT_DATA", detail=exc)
        return None
    except OSError as exc:
        check.add("CORRUPT_DATA", detail=exc)
        return None
    return nan, inf, bad_volumes


def _skip(stream, offset: int) -> None:
    # Forward reads rather than seek: on a gzip stream both decompress, and reading keeps one
    # code path for .nii and .nii.gz (a short file shows up as a short read afterwards).
    left = offset
    while left > 0:
        got = len(stream.read(min(left, 1 << 20)))
        if not got:
            return
        left -= got


def _read_into(stream, view: memoryview) -> int:
    total = 0
    while total < len(view):
        got = stream.readinto(view[total:])
        if not got:
            break
        total += got
    return total
