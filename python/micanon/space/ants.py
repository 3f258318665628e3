"""The one module that imports ANTsPy: images, transforms and the registration calls we use.

ANTs works in LPS and stores the inverse direction (fixed -> moving points); the conversion to
the engine's RAS ``<from>_to_<to>`` matrices happens here and nowhere else. Every registration
runs under :func:`reproducible_ants` (fixed seed, one thread) so a run's bytes never depend on
the machine's thread count.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import ants
import numpy as np

from micanon.space.grid import zooms_of

_THREADS_VAR = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"

# RAS <-> LPS flip; its own inverse.
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_ants(data: np.ndarray, affine: np.ndarray) -> ants.ANTsImage:
    """An ANTs image of ``data`` on its NIfTI grid (RAS affine -> ITK LPS origin/direction)."""
    lps = _LPS @ affine
    spacing = zooms_of(affine)
    direction = lps[:3, :3] / spacing
    return ants.from_numpy(
        np.ascontiguousarray(data, dtype=np.float32), origin=tuple(lps[:3, 3]),
        spacing=tuple(spacing), direction=direction,
    )


def read_affine(path: str) -> np.ndarray:
    """Read an ANTs .mat (fixed LPS -> moving LPS) as a 4x4 RAS matrix (same direction)."""
    tx = ants.read_transform(path)
    params = np.asarray(tx.parameters, dtype=float)
    center = np.asarray(tx.fixed_parameters, dtype=float)
    matrix = params[:9].reshape(3, 3)
    translation = params[9:12]
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = translation + center - matrix @ center
    return _LPS @ lps @ _LPS


def write_affine(ras_fixed_to_moving: np.ndarray, path: str) -> str:
    """Write a 4x4 RAS matrix (fixed points -> moving points) as an ANTs .mat; returns ``path``."""
    lps = _LPS @ ras_fixed_to_moving @ _LPS
    tx = ants.create_ants_transform(
        transform_type="AffineTransform", precision="float", dimension=3,
        matrix=lps[:3, :3], translation=lps[:3, 3], center=np.zeros(3),
    )
    ants.write_transform(tx, path)
    return path


@contextlib.contextmanager
def reproducible_ants(seed: int):
    """Run ANTs calls with a fixed seed on one thread, restoring the caller's settings after.

    ANTs' metrics sum per-thread partial results in an order that varies run to run, so two
    threads give a slightly different transform each time; one thread gives the same bytes every
    run, whatever the caller's thread count. ANTs reads the thread count from the environment at
    each call; ANTsPy reads its seed from a module global.
    """
    previous_seed = ants.config._random_seed
    previous_threads = os.environ.get(_THREADS_VAR)
    ants.config._random_seed = int(seed)
    os.environ[_THREADS_VAR] = "1"
    try:
        yield
    finally:
        ants.config._random_seed = previous_seed
        if previous_threads is None:
            os.environ.pop(_THREADS_VAR, None)
        else:
            os.environ[_THREADS_VAR] = previous_threads


def linear_fit(
    fixed: np.ndarray, fixed_affine: np.ndarray, moving: np.ndarray, moving_affine: np.ndarray, *,
    kind: str, seed: int, work_dir: str | None, init: np.ndarray | None = None, mask: np.ndarray | None = None,
    iterations=(100, 50), shrink=(2, 1), smoothing=(1, 0), sampling_rate: float = 1.0,
) -> np.ndarray:
    """ANTs ``Rigid`` or ``Affine`` fit (Mattes MI) of ``moving`` to ``fixed``.

    ``init`` and the result are RAS matrices mapping fixed world points to moving world points
    (identity when None). ``mask`` (fixed grid) limits the metric. Raises RuntimeError when ANTs
    fails.
    """
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp, reproducible_ants(seed):
        initial = ["Identity"] if init is None else [write_affine(init, os.path.join(tmp, "init.mat"))]
        fit = ants.registration(
            to_ants(fixed, fixed_affine), to_ants(moving, moving_affine), type_of_transform=kind,
            initial_transform=initial, outprefix=os.path.join(tmp, "fit_"),
            mask=None if mask is None else to_ants(mask.astype(np.float32), fixed_affine),
            aff_metric="mattes", aff_iterations=tuple(iterations), aff_shrink_factors=tuple(shrink),
            aff_smoothing_sigmas=tuple(smoothing), aff_random_sampling_rate=sampling_rate,
        )
        return read_affine(fit["fwdtransforms"][0])


def syn_field(
    fixed: np.ndarray, moving: np.ndarray, affine: np.ndarray, *, mask: np.ndarray, seed: int, work_dir: str | None,
    metric: tuple[str, int], iterations, grad_step: float, flow_sigma: float,
) -> np.ndarray:
    """SyN-only displacement field (mm, RAS, (x, y, z, 3) on the grid of ``affine``) taking
    ``moving`` toward ``fixed``, both on that one grid: warped(p) = moving(p + d(p)).

    ``mask`` limits the metric. No initial transform: the two images already share the grid.
    """
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp, reproducible_ants(seed):
        fit = ants.registration(
            to_ants(fixed, affine), to_ants(moving, affine), type_of_transform="SyNOnly",
            initial_transform=["Identity"], outprefix=os.path.join(tmp, "syn_"),
            mask=to_ants(mask.astype(np.float32), affine), syn_metric=metric[0], syn_sampling=metric[1],
            reg_iterations=tuple(iterations), grad_step=grad_step, flow_sigma=flow_sigma, total_sigma=0,
        )
        warp_path = next(p for p in fit["fwdtransforms"] if p.endswith("Warp.nii.gz"))
        field = ants.image_read(warp_path).numpy()  # (x, y, z, 3), LPS mm, on the grid
    # the grid has the same axes as the ANTs image, so voxel order matches; LPS -> RAS
    return field.astype(np.float32) * np.array([-1.0, -1.0, 1.0], np.float32)
