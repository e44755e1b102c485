"""Per-plane, per-channel intensity normalisation, the same at training and prediction.

Each 2D plane's ``low``/``high`` percentiles (per channel) map to 0/1 (``"minmax"``:
the extremes; ``"none"``: unchanged). Statistics are estimated on a regular subsample
of at most ``_STATS_PIXELS`` pixels so that numpy and dask planes of any size stay
cheap. Used by :mod:`~.data` (training samples), :mod:`~.infer` (tiled prediction),
the block-wise runner and the exporter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["plane_stats", "apply_stats", "normalize_plane"]

_STATS_PIXELS = 1 << 18  # percentiles are estimated on at most ~260 kpixels per plane


def plane_stats(plane: Any, normalization: dict, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel offset and scale of one 2D plane ``(Y, X)`` or ``(Y, X, C)``.

    Works on numpy and dask arrays; large planes are subsampled on a regular grid so
    memory stays small.

    Returns
    -------
    lo, scale : numpy.ndarray
        float64 arrays of length ``channels``; normalised = ``(x - lo) / scale``.
        ``scale`` is never 0 (a constant plane normalises to zeros).
    """
    ny, nx = int(plane.shape[0]), int(plane.shape[1])
    step = max(1, math.ceil(math.sqrt(ny * nx / _STATS_PIXELS)))
    sub = np.asarray(plane[::step, ::step])
    if sub.dtype.kind not in "buif":
        raise DataError(f"The image has type {sub.dtype}; it must be numeric (not complex).")
    sub = sub.astype(np.float64, copy=False)
    sub = sub.reshape(sub.shape[0] * sub.shape[1], -1)
    if sub.shape[1] != channels:
        raise DataError(f"Expected {channels} channel(s) but the image has {sub.shape[1]}.")
    method = normalization.get("method", "percentile")
    lo = np.zeros(channels)
    scale = np.ones(channels)
    for c in range(channels):
        v = sub[:, c]
        if method == "percentile":
            q = [normalization.get("low", 1.0), normalization.get("high", 99.8)]
            a, b = np.percentile(v, q)
            if not b > a:  # e.g. sparse bright spots on a flat background
                a, b = float(v.min()), float(v.max())
        elif method == "minmax":
            a, b = float(v.min()), float(v.max())
        elif method == "none":
            a, b = 0.0, 1.0
        else:
            raise DataError(f"Unknown normalisation method '{method}' in the model.")
        lo[c] = a
        scale[c] = b - a if b - a > 1e-12 * max(1.0, abs(a), abs(b)) else 1.0
    return lo, scale


def apply_stats(block: Any, lo: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Normalise a ``(Y, X)`` or ``(Y, X, C)`` block to float32 ``(C, Y, X)``."""
    arr = np.asarray(block)
    if arr.ndim == 2:
        arr = arr[..., None]
    out = np.empty((arr.shape[2], arr.shape[0], arr.shape[1]), dtype=np.float32)
    precise = arr.dtype.itemsize > 2 and arr.dtype != np.float32  # e.g. float64, int32
    for c in range(arr.shape[2]):
        if precise:  # subtract in float64 so large offsets keep small differences
            out[c] = (arr[..., c] - lo[c]) / scale[c]
        else:
            out[c] = arr[..., c]
            out[c] -= np.float32(lo[c])
            out[c] /= np.float32(scale[c])
    return out


def normalize_plane(plane: Any, normalization: dict, channels: int) -> np.ndarray:
    """Normalise a whole 2D plane to float32 ``(C, Y, X)`` (stats from the plane)."""
    lo, scale = plane_stats(plane, normalization, channels)
    return apply_stats(plane, lo, scale)


# ---------------------------------------------------------------------- validation
