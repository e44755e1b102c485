"""Tensor operations of the upsampling decoders (:mod:`.decoders`), without the registry.

Per-axis factors (:func:`axis_factors`, :func:`split_levels`), nearest-neighbour reverse
mapping (:func:`reverse_map_indices`, :func:`nearest_reverse_map`), the n-dimensional
pixel shuffle and its ICNR start (:func:`pixel_shuffle_nd`, :func:`icnr_`), and
:func:`fit_to_size`. :mod:`.decoders` re-exports every name, so
``from napari_unet_studio.core.decoders import nearest_reverse_map`` keeps working.
Only torch and the standard library: the exported architecture file ships this module
verbatim (:mod:`napari_unet_studio.export.architecture`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "axis_factors",
    "conv_nd",
    "fit_to_size",
    "icnr_",
    "nearest_reverse_map",
    "pixel_shuffle_nd",
    "reverse_map_indices",
    "split_levels",
]


def conv_nd(dims: int) -> type[nn.Module]:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return {2: nn.Conv2d, 3: nn.Conv3d}[dims]


def axis_factors(factor: int | Sequence[int], dims: int) -> tuple[int, ...]:
    """Per-axis upsampling factors: an int is used on every axis.

    Anisotropic volumes (z much coarser than y/x) pool and upsample their first levels
    in y/x only, e.g. ``(1, 2, 2)`` (see :mod:`~napari_unet_studio.core.anisotropy`).

    Raises
    ------
    ValueError
        Wrong length, or a factor that is not a power of two.
    """
    factors = (int(factor),) * dims if isinstance(factor, int) else tuple(int(f) for f in factor)
    if len(factors) != dims:
        raise ValueError(f"need {dims} factors, got {factor}")
    for f in factors:
        if f < 1 or f & (f - 1):
            raise ValueError(f"factor must be a power of two, got {factor}")
    return factors


def split_levels(factors: Sequence[int], steps: int) -> list[tuple[int, ...]]:
    """Split total per-axis factors into ``steps`` levels of 1 or 2, deepest first.

    An axis with total factor ``2**n`` is upsampled in the ``n`` deepest levels: the
    pattern of :func:`~napari_unet_studio.core.anisotropy.pool_factors`, where a coarse
    axis is pooled only once the others have caught up with its spacing.
    """
    logs = [int(math.log2(f)) for f in factors]
    if max(logs, default=0) > steps:
        raise ValueError(f"factors {tuple(factors)} need more than {steps} levels")
    return [tuple(2 if i < n else 1 for n in logs) for i in range(steps)]


def fit_to_size(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop or zero-pad the trailing spatial axes of ``x`` to exactly ``size``.

    Cropping and padding happen at the high end of each axis, which keeps pixel
    ``(0, 0)`` of the upsampled map aligned with pixel ``(0, 0)`` of the skip.
    """
    spatial = x.shape[2:]
    if tuple(spatial) == tuple(size):
        return x
    slices = [slice(None), slice(None)] + [slice(0, min(a, b)) for a, b in zip(spatial, size)]
    x = x[tuple(slices)]
    pad: list[int] = []
    for a, b in zip(reversed(x.shape[2:]), reversed(tuple(size))):
        pad += [0, max(0, b - a)]
    if any(pad):
        x = F.pad(x, pad)
    return x


def reverse_map_indices(
    out_size: int, in_size: int, *, convention: str = "center", device: torch.device | None = None
) -> torch.Tensor:
    """Input index that each output index takes under nearest-neighbour reverse mapping.

    For every output position ``o`` the input coordinate is computed, then rounded to
    the nearest input pixel and clipped to ``[0, in_size - 1]``:

    ``"center"`` (default)
        Pixel centres are aligned: ``u = (o + 0.5) * in_size / out_size - 0.5`` and the
        nearest pixel is ``floor(u + 0.5) = floor((o + 0.5) * in_size / out_size)``.
        At 2x every input pixel is copied into exactly a 2x2 block, the image does
        not shift, and ties never occur.
    ``"corner"``
        The lecture's literal rule: ``u = o * in_size / out_size`` rounded half up,
        ``floor(u + 0.5)``. Output (1, 1) of a 2x upsampling maps to input
        (0.5, 0.5) and picks input (1, 1), as in the lecture; at 2x the first input
        pixel then fills one output pixel and the last fills three, which shifts the
        image by half an input pixel. This is why the decoder uses ``"center"``.

    Parameters
    ----------
    out_size, in_size : int
        Lengths of the output and input axis.
    convention : {"center", "corner"}
        See above.
    device : torch.device, optional
        Where to create the index tensor.

    Returns
    -------
    torch.Tensor
        ``int64`` tensor of length ``out_size`` with values in ``[0, in_size - 1]``.
    """
    o = torch.arange(out_size, dtype=torch.float64, device=device)
    scale = in_size / out_size
    if convention == "center":
        src = torch.floor((o + 0.5) * scale)
    elif convention == "corner":
        src = torch.floor(o * scale + 0.5)
    else:
        raise ValueError(f"convention must be 'center' or 'corner', got {convention!r}")
    return src.clamp_(0, in_size - 1).to(torch.int64)


def nearest_reverse_map(
    x: torch.Tensor, size: Sequence[int], *, convention: str = "center"
) -> torch.Tensor:
    """Nearest-neighbour upsampling of the trailing axes of ``x`` to ``size``.

    Every output pixel looks up its source pixel (:func:`reverse_map_indices`), one axis
    at a time, so every output pixel gets a value.
    """
    nsp = len(size)
    for axis, (out_len, in_len) in enumerate(zip(size, x.shape[-nsp:])):
        idx = reverse_map_indices(out_len, in_len, convention=convention, device=x.device)
        x = x.index_select(x.ndim - nsp + axis, idx)
    return x


def pixel_shuffle_nd(x: torch.Tensor, r: int | Sequence[int]) -> torch.Tensor:
    """Rearrange ``(N, C*prod(r), *s)`` into ``(N, C, *(s*r))`` for d = 2 or 3.

    ``r`` is one factor for every axis or one per axis (e.g. ``(1, 2, 2)``). For 2D
    and an int this equals :func:`torch.nn.functional.pixel_shuffle`; channel
    ``c * prod(r) + k`` lands at sub-position ``k`` (row-major over the ``d`` offsets)
    of output channel ``c``.
    """
    n, c, *spatial = x.shape
    d = len(spatial)
    rs = [int(r)] * d if isinstance(r, int) else [int(v) for v in r]
    out_c = c // math.prod(rs)
    x = x.reshape(n, out_c, *rs, *spatial)
    # (n, oc, r1..rd, s1..sd) -> (n, oc, s1, r1, s2, r2, ...)
    perm = [0, 1]
    for i in range(d):
        perm += [2 + d + i, 2 + i]
    x = x.permute(*perm)
    return x.reshape(n, out_c, *[s * f for s, f in zip(spatial, rs)])


def icnr_(weight: torch.Tensor, r: int | Sequence[int], dims: int,
          init: Callable = nn.init.kaiming_normal_):
    """ICNR initialisation: every group of ``prod(r)`` output channels starts equal.

    Then the pixel shuffle of the convolution's output is, at initialisation, exactly
    a nearest-neighbour upsampling of a ``1 / prod(r)`` as wide convolution: no
    checkerboard pattern (Aitken et al., 2017). ``r``: one factor or one per axis.
    """
    n = math.prod(axis_factors(r, dims))
    out_c = weight.shape[0] // n
    sub = torch.empty((out_c, *weight.shape[1:]), dtype=weight.dtype, device=weight.device)
    init(sub)
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(n, dim=0))
    return weight
