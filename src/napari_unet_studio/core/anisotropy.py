"""Voxel spacing, per-level pooling factors, 3D patch shapes and the 2D/3D recommendation.

Pure numpy (no torch): the GUI uses :func:`recommend_dims` and :func:`parse_spacing`.

When z is much coarser than y/x (a typical confocal or light-sheet stack), pooling all
three axes by 2 from the first level on would make the z axis vanish long before y/x,
and the first levels would mix voxels that are far apart in z. As in nnU-Net, an axis is
pooled only while its spacing is at most twice the finest spacing of that level
(:func:`pool_factors`): for spacing ``(3, 1, 1)`` the first level pools ``(1, 2, 2)``,
the next ones ``(2, 2, 2)``. Every decoder upsamples by the same per-axis factors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "VOLUME_CPU",
    "ISOTROPIC_RATIO",
    "parse_spacing",
    "pool_factors",
    "total_factors",
    "is_isotropic",
    "patch_shape",
    "recommend_dims",
    "describe_pools",
    "preview_slab",
]

# 3D training sizes on the CPU: a first result in about a minute on 2 cores (two 48^3
# patches per step; width 16, the shipped 2D weights' width, so that they start the 3D
# network, inflated: core/inflate.py). GPUs: core.device.volume_defaults
VOLUME_CPU = {"patch_size": 48, "batch_size": 2, "width": 16}
PREVIEW_SLAB = 32  # slices (physical cube edge, in y/x pixels) sent for a 3D live preview
ISOTROPIC_RATIO = 1.5  # coarsest / finest spacing up to which a volume counts as isotropic
_POOL_RATIO = 2.0  # an axis is pooled while its spacing <= this x the finest one (nnU-Net)


def parse_spacing(spacing: Any, dims: int = 3) -> tuple[float, ...] | None:
    """Validate a voxel size ``(Z, Y, X)``; ``None`` stays ``None`` (isotropic).

    Raises
    ------
    ValueError
        Wrong length, or a value that is not a positive finite number.
    """
    if spacing is None:
        return None
    values = tuple(float(v) for v in spacing)
    if len(values) != dims:
        raise ValueError(f"spacing needs {dims} values (Z, Y, X), got {tuple(spacing)}")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing values must be positive numbers, got {tuple(spacing)}")
    return values


def pool_factors(spacing: Sequence[float] | None, depth: int, dims: int = 3
                 ) -> list[tuple[int, ...]]:
    """Per-axis pooling factor (1 or 2) of each of the ``depth`` levels, shallowest first.

    ``None`` (or an isotropic spacing): 2 on every axis at every level. Otherwise an axis
    is pooled at a level only if its current spacing is at most twice the finest current
    spacing; pooling doubles the spacing of the pooled axes.

    Examples
    --------
    >>> pool_factors((3.0, 1.0, 1.0), 3)
    [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    """
    if spacing is None:
        return [(2,) * dims for _ in range(depth)]
    current = [float(s) for s in spacing]
    out = []
    for _ in range(depth):
        finest = min(current)
        level = tuple(2 if s <= _POOL_RATIO * finest else 1 for s in current)
        current = [s * f for s, f in zip(current, level)]
        out.append(level)
    return out


def total_factors(pools: Sequence[Sequence[int]], dims: int) -> tuple[int, ...]:
    """Product of the per-level factors per axis: the bottleneck's downsampling."""
    return tuple(math.prod(int(p[a]) for p in pools) for a in range(dims))


def is_isotropic(spacing: Sequence[float] | None) -> bool:
    """Whether the coarsest spacing is at most :data:`ISOTROPIC_RATIO` x the finest."""
    return spacing is None or max(spacing) <= ISOTROPIC_RATIO * min(spacing)


def patch_shape(patch_size: int, spacing: Sequence[float] | None,
                pools: Sequence[Sequence[int]]) -> tuple[int, int, int]:
    """3D training patch ``(pz, py, px)`` covering about a cube in physical units.

    ``py = px = patch_size``; ``pz = patch_size * spacing_y / spacing_z``, rounded up to
    a multiple of the z pooling product and at least twice it (so the bottleneck keeps
    two voxels in z).
    """
    p = int(patch_size)
    fz = total_factors(pools, 3)[0]
    pz = p if spacing is None else p * float(spacing[1]) / float(spacing[0])
    pz = max(2 * fz, int(math.ceil(pz / fz)) * fz)
    return pz, p, p


def describe_pools(pools: Sequence[Sequence[int]]) -> str:
    """``"1x2x2, 2x2x2, 2x2x2"`` (z x y x x per level, shallowest first)."""
    return ", ".join("x".join(str(int(f)) for f in level) for level in pools)


def recommend_dims(shape: Sequence[int], image: Any = None, *, channel_axis: bool = False,
                   axis_labels: Sequence[str] | None = None,
                   spacing: Sequence[float] | None = None) -> tuple[int, str]:
    """Recommend a 2D or a 3D model for an image, and say why in one sentence.

    Parameters
    ----------
    shape : sequence of int
        The image's shape (labels' shape plus an optional channel axis).
    image : array-like, optional
        The data (numpy or dask); a few slices are read to measure how alike
        neighbouring slices are.
    channel_axis : bool
        Whether the last axis holds channels.
    axis_labels : sequence of str, optional
        Axis names (napari's ``viewer.dims.axis_labels``); a first axis called ``t`` or
        ``time`` is a time-lapse.
    spacing : sequence of float, optional
        Voxel size (Z, Y, X), only used in the explanation.

    Returns
    -------
    (int, str)
        2 or 3, and the reason.
    """
    spatial = tuple(int(s) for s in shape)[: len(shape) - int(channel_axis)]
    if len(spatial) < 3:
        return 2, "a single 2D image: a 2D model."
    nz = spatial[0]
    first = str(axis_labels[0]).lower() if axis_labels else ""
    if first in ("t", "time", "frame", "frames"):
        return 2, (f"the first axis is time ('{axis_labels[0]}'): a time-lapse trains a 2D "
                   "model on its frames.")
    if nz < 8:
        return 2, f"only {nz} slices: too thin for 3D patches, a 2D model per slice."
    if image is not None:
        r = _neighbour_correlation(image, channel_axis)
        if r is not None and r < 0.5:
            return 2, (f"neighbouring slices look unrelated (correlation {r:.2f} < 0.5): "
                       "a time-lapse or separate images, a 2D model per slice.")
        how = "" if r is None else f", neighbouring slices alike (correlation {r:.2f})"
    else:
        how = ""
    voxel = "" if spacing is None else (
        " (anisotropic: the first levels pool only in y/x)" if not is_isotropic(spacing) else "")
    return 3, (f"a volume of {nz} slices{how}: objects span several slices, so a 3D model "
               f"sees them whole{voxel}.")


def _neighbour_correlation(image: Any, channel_axis: bool, pairs: int = 6) -> float | None:
    """Median Pearson correlation of a few pairs of neighbouring slices (subsampled)."""
    nz = int(np.shape(image)[0])
    if nz < 2:
        return None
    zs = np.unique(np.linspace(0, nz - 2, min(pairs, nz - 1)).round().astype(int))
    ny, nx = (int(s) for s in np.shape(image)[1:3])
    step = max(1, int(math.ceil(math.sqrt(ny * nx / 65536))))
    values = []
    for z in zs:
        a = np.asarray(image[int(z)][::step, ::step], dtype=np.float64)
        b = np.asarray(image[int(z) + 1][::step, ::step], dtype=np.float64)
        if channel_axis:
            a, b = a.mean(axis=-1), b.mean(axis=-1)
        sa, sb = a.std(), b.std()
        if sa > 0 and sb > 0:
            values.append(float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb)))
    return float(np.median(values)) if values else None


def preview_slab(volume: Any, z: int, depth: int) -> tuple[int, np.ndarray]:
    """Slices ``[z0, z0 + depth)`` around slice ``z`` (clipped to the volume) for the live
    preview of a 3D model, and the index of ``z`` among them."""
    nz = int(np.shape(volume)[0])
    depth = max(1, min(int(depth), nz))
    z0 = int(np.clip(int(z) - depth // 2, 0, nz - depth))
    return int(z) - z0, np.asarray(volume[z0:z0 + depth])
