"""How alike two images are, and where the head is: Otsu's split, the head silhouette, NCC, MI.

Measures take arrays on one shared grid and a boolean mask of the voxels to compare.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def otsu_threshold(values: np.ndarray, bins: int = 256, clip_percentile: float | None = None) -> tuple[float, float]:
    """Otsu's threshold of a sample: (threshold, between-class / total variance).

    ``clip_percentile``: values above that percentile are clipped first, so a few very bright
    voxels (vessels, fat, ringing) do not stretch the histogram's bins.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if clip_percentile is not None:
        values = np.clip(values, values.min(), np.percentile(values, clip_percentile))
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts, dtype=np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(counts * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    best = int(np.argmax(between))
    total = values.var() * values.size**2
    separation = float(between[best] / total) if total > 0 else 0.0
    return float(centres[best]), separation


def head_mask(data: np.ndarray) -> np.ndarray:
    """Largest connected foreground blob of a (coarse) head image, holes filled."""
    mask = data > otsu_threshold(data, bins=128, clip_percentile=99.5)[0]
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, count + 1))
    mask = labels == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2))


def normalized_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of two images over a mask (0 where undefined)."""
    x = a[mask].astype(np.float64)
    y = b[mask].astype(np.float64)
    if x.size < 10 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def mutual_information(a: np.ndarray, b: np.ndarray, mask: np.ndarray, bins: int = 32) -> float:
    """Mutual information (nats) of two images over a mask, from a joint histogram."""
    x, y = a[mask], b[mask]
    if x.size < 10:
        return 0.0
    joint, _, _ = np.histogram2d(x, y, bins=bins)
    p = joint / joint.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks on one grid (0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 0.0
