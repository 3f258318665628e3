"""The header check: an output's stored header is its input's, exactly (a kept header is a copied header)."""

from __future__ import annotations

from typing import Any

import numpy as np

from micanon.io import StoredImage


def header_check(before: StoredImage, after: StoredImage) -> dict[str, Any]:
    """The record's header check: {pass, differences} (:func:`header_differences`)."""
    differences = header_differences(before, after)
    return {"pass": not differences, "differences": differences}


def header_differences(before: StoredImage, after: StoredImage) -> list[str]:
    """What differs between two images' stored headers, one sentence each (empty: header kept).

    Compares shape, affine, qform and sform with their codes, stored data type, scl_slope and
    scl_inter, voxel sizes and units, exactly (a kept header is a copied header).
    """
    a, b = before.header, after.header
    differences: list[str] = []
    shape_a, shape_b = a.get_data_shape(), b.get_data_shape()
    if shape_a != shape_b:
        differences.append(f"shape {shape_text(shape_a)} -> {shape_text(shape_b)}")
    if not np.array_equal(before.affine, after.affine):
        differences.append(f"affine differs (max {_max_abs(before.affine, after.affine):.4g})")
    for form in ("qform", "sform"):
        matrix_a, code_a = getattr(a, f"get_{form}")(coded=True)
        matrix_b, code_b = getattr(b, f"get_{form}")(coded=True)
        if int(code_a or 0) != int(code_b or 0):
            differences.append(f"{form}_code {int(code_a or 0)} -> {int(code_b or 0)}")
        if (matrix_a is None) != (matrix_b is None) or (matrix_a is not None and not np.array_equal(matrix_a, matrix_b)):
            detail = f" (max {_max_abs(matrix_a, matrix_b):.4g})" if matrix_a is not None and matrix_b is not None else ""
            differences.append(f"{form} differs{detail}")
    dtype_a, dtype_b = np.dtype(a.get_data_dtype()), np.dtype(b.get_data_dtype())
    if dtype_a != dtype_b:
        same_name = dtype_a.name == dtype_b.name  # then only the byte order changed: show it
        differences.append(f"data type {dtype_a.str} -> {dtype_b.str}" if same_name else f"data type {dtype_a} -> {dtype_b}")
    for field_name in ("scl_slope", "scl_inter"):
        value_a, value_b = float(a[field_name]), float(b[field_name])
        if not (value_a == value_b or (np.isnan(value_a) and np.isnan(value_b))):
            differences.append(f"{field_name} {value_a:g} -> {value_b:g}")
    ndim = len(shape_a)
    if len(shape_b) == ndim and not np.array_equal(a["pixdim"][1 : ndim + 1], b["pixdim"][1 : ndim + 1]):
        differences.append(f"voxel sizes (pixdim) {shape_text(a['pixdim'][1:ndim + 1])} -> {shape_text(b['pixdim'][1:ndim + 1])}")
    if a.get_xyzt_units() != b.get_xyzt_units():
        differences.append(f"units {'/'.join(a.get_xyzt_units())} -> {'/'.join(b.get_xyzt_units())}")
    return differences


def shape_text(values) -> str:
    """Sizes as `188x256x190` (shape or voxel sizes)."""
    return "x".join(f"{float(v):g}" for v in values)


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))
