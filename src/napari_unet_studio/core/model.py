"""The U-Net: encoder (max-pools that keep their indices), decoder, 1x1 head.

``progressive=True`` (the U-Net): each decoder step upsamples by 2 with the chosen
decoder, concatenates the encoder's features of the same size (skip connection) and
applies conv-conv, until full resolution.

``progressive=False`` (FCN-style, for comparison): the bottleneck is upsampled to full
resolution in one step, with no skip connections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .anisotropy import pool_factors, total_factors
from .config import ModelConfig
from .decoders import Upsampler, conv_nd, get_decoder
from .stem import make_stem

__all__ = [
    "ConvBlock",
    "UpBlock",
    "UNet",
    "build_model",
    "count_parameters",
    "has_batch_norm",
    "freeze_batch_norm",
    "recalibrate_batch_norm",
    "min_input_size",
    "pad_to_multiple",
]


def _norm(kind: str, channels: int, dims: int) -> nn.Module:
    if kind == "batch":
        return {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](channels)
    if kind == "instance":
        return {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[dims](channels, affine=True)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


class ConvBlock(nn.Sequential):
    """conv 3x3 -> norm -> ReLU, twice (same padding, so sizes are kept)."""

    def __init__(self, in_channels: int, out_channels: int, dims: int, norm: str):
        conv = conv_nd(dims)
        bias = norm == "none"
        super().__init__(
            conv(in_channels, out_channels, 3, padding=1, bias=bias),
            _norm(norm, out_channels, dims),
            nn.ReLU(inplace=True),
            conv(out_channels, out_channels, 3, padding=1, bias=bias),
            _norm(norm, out_channels, dims),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """One progressive decoder step: upsample to the skip's size, concatenate, conv-conv."""

    def __init__(self, up: Upsampler, skip_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.up = up
        self.conv = ConvBlock(up.out_channels + skip_channels, out_channels, up.dims, norm)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor, indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Upsample ``x`` to ``skip``'s spatial size, fuse with it and convolve."""
        x = self.up(x, skip.shape[2:], None if indices is None else [indices])
        return self.conv(torch.cat([x, skip], dim=1))


class UNet(nn.Module):
    """U-Net with a pluggable upsampling decoder.

    Parameters
    ----------
    config : ModelConfig
        Architecture; ``config.to_dict()`` rebuilds the same network.

    Notes
    -----
    Level ``l`` of the encoder has ``width * 2**l`` channels; ``depth`` max-pools
    (kernel 2, stride 2, floor mode) lead to the bottleneck. Any input size works: the
    decoders produce the skip's exact size (odd sizes included).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        info = get_decoder(config.decoder)
        self.needs_indices = info.needs_indices
        dims, norm = config.dims, config.norm
        ch = [config.width * 2**level for level in range(config.depth + 1)]
        self.channels = ch
        self.encoder = nn.ModuleList(
            [ConvBlock(config.in_channels, ch[0], dims, norm)]
            + [ConvBlock(ch[lv - 1], ch[lv], dims, norm) for lv in range(1, config.depth + 1)]
        )
        self._pool = {2: F.max_pool2d, 3: F.max_pool3d}[dims]
        # per-level, per-axis pooling (anisotropy.py): 2 everywhere unless z is coarse
        self.pools = pool_factors(getattr(config, "spacing", None), config.depth, dims)
        if config.progressive:
            self.decoder = nn.ModuleList(
                [
                    UpBlock(info.cls(ch[lv + 1], ch[lv], dims, self._factor(lv)), ch[lv],
                            ch[lv], norm)
                    for lv in reversed(range(config.depth))
                ]
            )
            self.oneshot = None
        else:
            self.decoder = nn.ModuleList()
            total = total_factors(self.pools, dims)
            self.oneshot = info.cls(ch[-1], ch[0], dims, total if len(set(total)) > 1 else
                                    2**config.depth, level_channels=ch[-2::-1],
                                    level_factors=self.pools[::-1])
        self.head = conv_nd(dims)(ch[0], config.num_classes, kernel_size=1)
        self.stem = make_stem(config, ch[0])  # fixed filters + zero-init branches (stem.py)

    def _factor(self, level: int) -> int | tuple[int, ...]:
        """Pooling after encoder ``level``: 2, or per-axis factors when they differ."""
        f = self.pools[level]
        return 2 if all(v == 2 for v in f) else tuple(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, *spatial)`` for an input ``(N, C, *spatial)``."""
        if x.ndim != self.config.dims + 2:
            raise ValueError(
                f"expected a {self.config.dims + 2}D tensor (N, C, *spatial), got {x.ndim}D"
            )
        feats = self.stem(x) if self.stem is not None else None
        skips: list[torch.Tensor] = []
        indices: list[torch.Tensor | None] = []
        for level, block in enumerate(self.encoder):
            if level:
                k = self._factor(level - 1)
                if any(s < f for s, f in zip(x.shape[2:], self.pools[level - 1])):
                    raise ValueError(
                        f"input too small for depth {self.config.depth}: a spatial size of "
                        f"at least {min_input_size(self.config)} pixels is needed"
                    )
                if self.needs_indices:
                    x, idx = self._pool(x, k, k, return_indices=True)
                    indices.append(idx)
                else:
                    x = self._pool(x, k, k)
            x = block(x)
            if level == 0 and feats is not None:
                x = self.stem.inject(x, feats)
            skips.append(x)
        skips.pop()  # the bottleneck is not a skip
        if self.oneshot is not None:
            deepest_first = list(reversed(indices)) if self.needs_indices else None
            x = self.oneshot(x, skips[0].shape[2:], deepest_first)
        else:
            for block in self.decoder:
                skip = skips.pop()
                idx = indices.pop() if self.needs_indices else None
                x = block(x, skip, idx)
        if feats is not None:
            return self.stem.add_logits(self.head(x), feats)
        return self.head(x)


def build_model(config: ModelConfig | dict) -> UNet:
    """Build a :class:`UNet` from a config or its dict form."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return UNet(config)


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def min_input_size(config: ModelConfig) -> int | tuple[int, ...]:
    """Smallest spatial size (per axis) the model accepts: ``2**depth``, or per axis
    ``(z, y, x)`` for an anisotropic 3D model (``config.spacing``)."""
    if getattr(config, "spacing", None) is None:
        return 2**config.depth
    return total_factors(pool_factors(config.spacing, config.depth, config.dims), config.dims)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, Sequence[int]]:
    """Reflect-pad (or replicate where too small) the trailing axes up to a multiple.

    Returns the padded tensor and the original spatial size (to crop the output).
    """
    size = tuple(x.shape[2:])
    pad: list[int] = []
    for s in reversed(size):
        pad += [0, (-s) % multiple]
    if any(pad):
        mode = "reflect" if all(p < s for p, s in zip(pad[1::2], reversed(size))) else "replicate"
        x = F.pad(x, pad, mode=mode)
    return x, size


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` holds batch-norm layers (their statistics lag during training)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def freeze_batch_norm(model: nn.Module) -> nn.Module:
    """Put the batch-norm layers in eval mode: they normalise with their stored statistics
    and stop updating them (their scale and shift still train). Returns ``model``."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def recalibrate_batch_norm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Re-estimate batch-norm running statistics as a plain average over ``batches``.

    The weights are not changed; returns ``model`` in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    for m in norms:
        m.momentum = 0.1
    return model.eval()
