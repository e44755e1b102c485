"""Upsampling decoders of the U-Net, one class each, plus a registry.

Every decoder turns a low-resolution feature map ``x`` of shape ``(N, C_in, *s)`` into a
map of shape ``(N, C_out, *size)``, where ``size`` is the exact spatial size of the skip
connection it will be concatenated with (odd sizes included). They follow the upsampling
lecture this project is built from:

``nearest``
    Nearest neighbour by *reverse mapping*: each output pixel is mapped back to a
    real-valued input coordinate and takes the value of the nearest input pixel, so no
    output pixel is left unfilled (forward mapping can leave holes).
``bilinear``
    Linear interpolation between the neighbouring input values (trilinear in 3D), with
    pixel-centre alignment (``align_corners=False``).
``unpool``
    Max-unpooling: the encoder's max-pool stores where each maximum came from; the value
    is put back at that position and every other position is zero (SegNet/DeconvNet).
``transposed``
    Transposed convolution: the transpose of the convolution's sparse matrix, with
    learned weights.
``pixelshuffle``
    Sub-pixel convolution: a convolution makes ``r**dims`` times the channels, which are
    rearranged into an ``r``-times larger grid; ICNR initialisation makes it start out
    as nearest-neighbour upsampling (no checkerboard).

Adding a decoder is one class plus one :func:`register_decoder` decorator; the GUI, the
CLI (``unet-studio decoders``) and the model list the registry. The tensor operations
they share (reverse mapping, pixel shuffle, ICNR, per-axis factors) are in
:mod:`.decoder_ops` and re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .decoder_ops import (
    axis_factors,
    conv_nd,
    fit_to_size,
    icnr_,
    nearest_reverse_map,
    pixel_shuffle_nd,
    reverse_map_indices,
    split_levels,
)

__all__ = [
    "Upsampler",
    "NearestUp",
    "BilinearUp",
    "UnpoolUp",
    "TransposedUp",
    "PixelShuffleUp",
    "DecoderInfo",
    "register_decoder",
    "get_decoder",
    "list_decoders",
    "describe_decoders",
    "reverse_map_indices",
    "nearest_reverse_map",
    "pixel_shuffle_nd",
    "fit_to_size",
    "conv_nd",
    "axis_factors",
    "split_levels",
]


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DecoderInfo:
    """A registered decoder: its name, class and one-line description."""

    name: str
    cls: type[Upsampler]
    description: str
    needs_indices: bool = False


_REGISTRY: dict[str, DecoderInfo] = {}


def register_decoder(
    name: str, description: str, *, needs_indices: bool = False
) -> Callable[[type[Upsampler]], type[Upsampler]]:
    """Class decorator that registers an :class:`Upsampler` under ``name``.

    Parameters
    ----------
    name : str
        The name users pick (GUI, CLI ``--decoder``, ``ModelConfig.decoder``).
    description : str
        One line shown next to the name.
    needs_indices : bool
        Whether the decoder needs the paired encoder max-pool's indices.
    """

    def wrap(cls: type[Upsampler]) -> type[Upsampler]:
        if name in _REGISTRY:
            raise ValueError(f"decoder {name!r} is already registered")
        _REGISTRY[name] = DecoderInfo(name, cls, description, needs_indices)
        cls.name = name
        return cls

    return wrap


def get_decoder(name: str) -> DecoderInfo:
    """Look up a decoder by name.

    Raises
    ------
    ValueError
        With the list of known names if ``name`` is not registered.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise ValueError(f"unknown decoder {name!r}; choose one of: {known}") from None


def list_decoders() -> list[str]:
    """Names of all registered decoders, in registration order."""
    return list(_REGISTRY)


def describe_decoders() -> list[tuple[str, str]]:
    """``(name, one-line description)`` for every registered decoder."""
    return [(info.name, info.description) for info in _REGISTRY.values()]


# --------------------------------------------------------------------------- base class
class Upsampler(nn.Module):
    """Base class of the decoders: ``(N, in_ch, *s) -> (N, out_ch, *size)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels before and after upsampling.
    dims : int
        2 or 3 spatial dimensions.
    factor : int or sequence of int
        Nominal upsampling factor (2 for a U-Net step, ``2**depth`` for one-shot), or
        one power of two per axis (e.g. ``(1, 2, 2)``: y/x only, for anisotropic
        volumes). ``self.factors`` holds the per-axis form.
    level_channels : sequence of int, optional
        Channels of the encoder maps at each of the levels crossed (``log2`` of the
        largest factor), deepest first (default: ``out_channels`` at every level). Only
        decoders that reuse encoder state (``unpool``) need it.
    level_factors : sequence of sequence of int, optional
        Per-axis factor of each level crossed, deepest first (default:
        :func:`split_levels`). Only ``unpool`` uses it.
    """

    name: str = ""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dims: int = 2,
        factor: int | Sequence[int] = 2,
        level_channels: Sequence[int] | None = None,
        level_factors: Sequence[Sequence[int]] | None = None,
    ):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        self.factors = axis_factors(factor, dims)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.dims = dims
        self.factor = factor if isinstance(factor, int) else max(self.factors)
        steps = int(math.log2(max(self.factors)))
        self.level_channels = list(level_channels or [out_channels] * steps)
        if len(self.level_channels) != steps:
            raise ValueError(f"level_channels needs {steps} entries, got {level_channels}")
        self.level_factors = ([axis_factors(f, dims) for f in level_factors] if level_factors
                              else split_levels(self.factors, steps))
        if len(self.level_factors) != steps or tuple(
                math.prod(f[a] for f in self.level_factors) for a in range(dims)) != self.factors:
            raise ValueError(f"level_factors {level_factors} do not multiply to {self.factors}")

    def forward(
        self,
        x: torch.Tensor,
        size: Sequence[int],
        indices: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:  # pragma: no cover - abstract
        """Upsample ``x`` to spatial ``size``.

        ``indices`` are the paired encoder max-pool indices, deepest first; only
        decoders registered with ``needs_indices=True`` use them.
        """
        raise NotImplementedError


# --------------------------------------------------------------------------- decoders
@register_decoder(
    "nearest",
    "Nearest neighbour by reverse mapping: each output pixel copies the closest input "
    "pixel; no learned upsampling weights. In the U-Net as accurate as bilinear.",
)
class NearestUp(Upsampler):
    """1x1 convolution (channel change) then nearest-neighbour reverse mapping.

    The 1x1 convolution runs at low resolution; it commutes with nearest upsampling,
    so this equals upsampling first and convolving after, at a fraction of the cost.
    """

    def __init__(self, in_channels, out_channels, dims=2, factor=2, level_channels=None,
                 level_factors=None):
        super().__init__(in_channels, out_channels, dims, factor, level_channels, level_factors)
        self.proj = conv_nd(dims)(in_channels, out_channels, kernel_size=1)

    def forward(self, x, size, indices=None):  # noqa: D102
        return nearest_reverse_map(self.proj(x), size)


@register_decoder(
    "bilinear",
    "Bilinear (trilinear in 3D) interpolation between neighbouring pixels: smooth, "
    "no learned upsampling weights; a safe default.",
)
class BilinearUp(Upsampler):
    """1x1 convolution then linear interpolation with pixel-centre alignment.

    The interpolation weights of every output pixel sum to one, so the 1x1
    convolution (weights and bias) commutes with it and runs at low resolution.
    """

    def __init__(self, in_channels, out_channels, dims=2, factor=2, level_channels=None,
                 level_factors=None):
        super().__init__(in_channels, out_channels, dims, factor, level_channels, level_factors)
        self.proj = conv_nd(dims)(in_channels, out_channels, kernel_size=1)
        self.mode = "bilinear" if dims == 2 else "trilinear"

    def forward(self, x, size, indices=None):  # noqa: D102
        return F.interpolate(self.proj(x), size=tuple(size), mode=self.mode, align_corners=False)


@register_decoder(
    "unpool",
    "Max-unpooling with the encoder's stored pooling positions: values return to where "
    "the maxima were, zeros elsewhere (SegNet); often the sharpest on textured images.",
    needs_indices=True,
)
class UnpoolUp(Upsampler):
    """1x1 convolution to the pooled channels, then max-unpooling with stored indices.

    ``indices`` must hold ``log2(factor)`` index tensors, deepest first, each from a
    ``kernel_size=2, stride=2`` max-pool of a map with ``level_channels[i]`` channels.
    For one-shot use (``factor > 2``) a 1x1 projection and an unpooling are applied
    once per stored level, with no skip features and no 3x3 convolutions in between.
    """

    def __init__(self, in_channels, out_channels, dims=2, factor=2, level_channels=None,
                 level_factors=None):
        super().__init__(in_channels, out_channels, dims, factor, level_channels, level_factors)
        conv = conv_nd(dims)
        # a 1x1 projection before each unpooling matches the channels of the map
        # that was pooled at that level; a last one gives ``out_channels``
        chans = [in_channels, *self.level_channels]
        self.projs = nn.ModuleList(
            [conv(a, b, kernel_size=1) for a, b in zip(chans[:-1], chans[1:])]
        )
        self.out_proj = (
            conv(chans[-1], out_channels, kernel_size=1)
            if chans[-1] != out_channels
            else nn.Identity()
        )
        self.unpool = {2: F.max_unpool2d, 3: F.max_unpool3d}[dims]
        self.steps = len(self.level_channels)

    def forward(self, x, size, indices=None):  # noqa: D102
        if indices is None or len(indices) != self.steps:
            raise ValueError(
                f"unpool needs {self.steps} max-pool index tensor(s), got "
                f"{0 if indices is None else len(indices)}"
            )
        # each unpooling restores the size the map had before that pooling: the
        # pooled size of the next shallower level, and ``size`` for the last one
        targets = [tuple(idx.shape[2:]) for idx in indices[1:]] + [tuple(size)]
        for proj, idx, target, k in zip(self.projs, indices, targets, self.level_factors):
            x = self.unpool(proj(x), idx, kernel_size=k, stride=k, output_size=target)
        return self.out_proj(x)


@register_decoder(
    "transposed",
    "Transposed convolution (the transpose of a convolution's matrix), learned weights; "
    "the classic U-Net up-convolution.",
)
class TransposedUp(Upsampler):
    """A transposed convolution; by default kernel = stride = factor (no overlaps).

    Parameters
    ----------
    kernel_size, stride : int, optional
        Override the defaults (``factor``), e.g. ``kernel_size=3, stride=1`` gives
        the lecture's 2x2 -> 4x4 example.
    bias : bool
        Whether the transposed convolution has a bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dims: int = 2,
        factor: int = 2,
        level_channels: Sequence[int] | None = None,
        level_factors: Sequence[Sequence[int]] | None = None,
        *,
        kernel_size: int | None = None,
        stride: int | None = None,
        bias: bool = True,
    ):
        super().__init__(in_channels, out_channels, dims, factor, level_channels, level_factors)
        tconv = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]
        self.up = tconv(
            in_channels,
            out_channels,
            kernel_size=kernel_size or self.factors,
            stride=stride or self.factors,
            bias=bias,
        )

    def forward(self, x, size, indices=None):  # noqa: D102
        return fit_to_size(self.up(x), size)


@register_decoder(
    "pixelshuffle",
    "Pixel shuffle (sub-pixel convolution) with ICNR start: learned, starts without "
    "checkerboard artefacts; the most weights and the slowest step of the five.",
)
class PixelShuffleUp(Upsampler):
    """3x3 convolution to ``out * factor**dims`` channels, then a pixel shuffle."""

    def __init__(self, in_channels, out_channels, dims=2, factor=2, level_channels=None,
                 level_factors=None):
        super().__init__(in_channels, out_channels, dims, factor, level_channels, level_factors)
        n = math.prod(self.factors)
        self.conv = conv_nd(dims)(in_channels, out_channels * n, kernel_size=3, padding=1)
        icnr_(self.conv.weight, self.factors, dims)
        with torch.no_grad():
            bias = torch.zeros(out_channels)
            self.conv.bias.copy_(bias.repeat_interleave(n))

    def forward(self, x, size, indices=None):  # noqa: D102
        return fit_to_size(pixel_shuffle_nd(self.conv(x), self.factors), size)
