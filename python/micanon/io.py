"""NIfTI in and out, keeping everything about the file except the voxels we change.

Images are handled as their raw stored values (the integers or floats on disk, before
``scl_slope``/``scl_inter``), so that untouched voxels round-trip bit for bit. Writing goes
through our own header + data writer rather than ``nibabel.save``: nibabel recomputes the
scaling of integer data on save, which would change the stored values and the header.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener
from nibabel.volumeutils import array_to_file

# gzip level of written .nii.gz: 4 keeps a 100 MB float image under ~2 s to compress while the
# files stay within ~5 % of level 9. Fixed mtime and no embedded name make the bytes reproducible.
GZIP_LEVEL = 4


@dataclass(frozen=True)
class StoredImage:
    """One NIfTI image as stored: raw values on its own voxel grid (scanner world = ``affine``).

    ``raw`` holds the on-disk values and dtype (no scaling applied), in the file's voxel order.
    """

    path: str
    header: nib.Nifti1Header
    raw: np.ndarray
    affine: np.ndarray

    @property
    def shape3d(self) -> tuple[int, int, int]:
        """Shape of one volume (the first three axes)."""
        return tuple(int(n) for n in self.raw.shape[:3])  # type: ignore[return-value]

    @property
    def zooms(self) -> np.ndarray:
        """Voxel size in mm along the three spatial axes (from the affine, so oblique-safe)."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def volumes(self) -> int:
        """Number of 3D volumes (1 for a 3D image; 4D and higher are flattened to volumes)."""
        return int(np.prod(self.raw.shape[3:], dtype=int)) if self.raw.ndim > 3 else 1

    def slope_inter(self) -> tuple[float, float]:
        """Scaling of stored values to real values (1, 0 where the header sets none)."""
        slope, inter = self.header.get_slope_inter()
        slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
        inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
        return slope, inter

    def real(self, volume: int = 0) -> np.ndarray:
        """One 3D volume in real units (scaling applied), float32, native voxel grid."""
        slope, inter = self.slope_inter()
        return self.volume_raw(volume).astype(np.float32) * np.float32(slope) + np.float32(inter)

    def volume_raw(self, volume: int) -> np.ndarray:
        """Raw stored values of one 3D volume (a view where possible)."""
        if self.raw.ndim == 3:
            return self.raw
        return self.raw.reshape(self.shape3d + (-1,), order="F")[..., volume]


def read_image(path: str | os.PathLike[str]) -> StoredImage:
    """Read a NIfTI-1/2 file; raw on-disk values, scanner-space affine (sform, else qform)."""
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        img = nib.load(path)
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise ValueError(f"{path}: not a readable NIfTI image ({exc})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)) or not img.header.is_single:
        raise ValueError(f"{path}: not a single-file NIfTI image ({type(img).__name__})")
    if img.ndim < 3:
        raise ValueError(f"{path}: a {img.ndim}D image, need 3D or 4D")
    raw = np.asarray(img.dataobj.get_unscaled())
    # nibabel's loaded header has scl_slope/scl_inter moved into the data proxy (set to NaN);
    # read the header as stored on disk instead, so writing it back keeps the scaling.
    with ImageOpener(path) as stream:
        header = img.header_class.from_fileobj(stream)
    return StoredImage(path=path, header=header, raw=raw, affine=np.asarray(img.affine, float))


def to_stored(real: np.ndarray, image: StoredImage) -> np.ndarray:
    """Real-unit values -> raw stored values of ``image``'s dtype: unscale, round, clip."""
    dtype = np.dtype(image.header.get_data_dtype())
    slope, inter = image.slope_inter()
    values = (np.asarray(real, dtype=np.float64) - inter) / slope if (slope, inter) != (1.0, 0.0) else real
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    elif np.issubdtype(dtype, np.floating):
        values = np.nan_to_num(values, nan=0.0)
    return np.asarray(values).astype(dtype.newbyteorder("="), copy=False)


def write_like(template: StoredImage, raw: np.ndarray, path: str | os.PathLike[str], descrip: str) -> None:
    """Write ``raw`` (stored values, same shape and dtype as ``template.raw``) with its header.

    Keeps shape, affine, qform/sform and codes, dtype, scl_slope/scl_inter, units, intent;
    sets ``descrip``, blanks ``aux_file``/``db_name``, drops header extensions (they can carry
    identifying text). The file is complete and fsynced when this returns.
    """
    if raw.shape != template.raw.shape:
        raise ValueError(f"{path}: data shape {raw.shape} differs from input {template.raw.shape}")
    header = template.header.copy()
    header.extensions.clear()
    header["vox_offset"] = header.single_vox_offset
    header["descrip"] = descrip.encode("ascii", "replace")[:79]
    header["aux_file"] = b""
    if "db_name" in header.keys():
        header["db_name"] = b""
    out_dtype = header.get_data_dtype()
    path = str(path)
    with open(path, "wb") as handle:
        if path.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=handle, compresslevel=GZIP_LEVEL, mtime=0) as stream:
                _write_nifti(stream, header, raw, out_dtype)
        else:
            _write_nifti(handle, header, raw, out_dtype)
        handle.flush()
        os.fsync(handle.fileno())


def _write_nifti(stream, header: nib.Nifti1Header, raw: np.ndarray, out_dtype: np.dtype) -> None:
    header.write_to(stream)
    # nan2zero=False: float data must keep its NaNs exactly as read.
    array_to_file(raw, stream, out_dtype, offset=int(header["vox_offset"]), order="F", nan2zero=False)


def descrip_for(version: str, method: str) -> str:
    """The ``descrip`` text of an output: which tool, version and method made it."""
    return f"micanon {version} {method}"


def output_path_ok(path: str | os.PathLike[str]) -> Path:
    """Check an output path names a .nii or .nii.gz file in an existing folder."""
    out = Path(path)
    if not (out.name.endswith(".nii") or out.name.endswith(".nii.gz")):
        raise ValueError(f"{out}: output must end in .nii or .nii.gz")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: output folder does not exist")
    return out
