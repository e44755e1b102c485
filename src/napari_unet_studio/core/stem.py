"""A fixed multi-scale filter stem: the random forest's features, inside the U-Net.

Why. On real photos and dense labels the classical pixel classifier (scikit-image's
``multiscale_basic_features`` + a random forest) is strong because every pixel sees
hand-made filters at five scales at once: smoothed intensity, gradient magnitude and the
Hessian's eigenvalues, sigma 1-16. A U-Net trained for 150 steps on a few strokes has
to learn such filters first. This module computes the same kind of filters in torch as
fixed (never trained) convolutions of every input channel and feeds them to the network
in two ways that leave a pretrained network's output unchanged at the first step:

* ``"pixel"``: a per-pixel MLP (1x1 convolutions) on the filter responses whose output
  is **added to the logits**; its last layer starts at zero.
* ``"project"``: a 1x1 projection of the filter responses **added to the first encoder
  level's features**; it starts at zero.
* ``"both"``: the two together.

Filters per channel and sigma (sigmas 1, 2, 4, 8, 16 as in ``multiscale_basic_features``
with ``sigma_min=1, sigma_max=16``): Gaussian smoothing ``G`` (the kernel and the
``reflect`` border of :func:`scipy.ndimage.gaussian_filter`, truncated at 4 sigma),
gradient magnitude ``sigma * |grad G|`` (central differences) and, in 2D, the two
eigenvalues of the Hessian ``sigma**2 * H(G)`` (second differences); in 3D the
Laplacian ``sigma**2 * trace H(G)`` replaces the eigenvalues. Scaling by powers of sigma
keeps every scale in the same range (inputs are normalised to about 0-1).

Measured in docs/benchmarks.md (realistic suite, ablation). Pure torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import STEMS  # "none", "pixel", "project", "both"

__all__ = ["STEMS", "SIGMAS", "FilterBank", "Stem", "make_stem", "gaussian_kernel",
           "stem_parameter_prefix", "fit_pixel_branch", "fit_steps", "track_best_from"]

SIGMAS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
_TRUNCATE = 4.0
_HIDDEN = 32  # hidden width of the per-pixel MLP
_PREFIX = "stem."


def stem_parameter_prefix() -> str:
    """Name prefix of the stem's trainable weights in a model's ``state_dict``."""
    return _PREFIX


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """1D Gaussian of :func:`scipy.ndimage.gaussian_filter` (radius ``int(4 sigma + 0.5)``)."""
    radius = int(_TRUNCATE * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    return (k / k.sum()).float()


def _reflect_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of scipy's ``reflect`` border (d c b a | a b c d | d c b a), any ``pad``."""
    idx = torch.arange(-pad, n + pad, device=device) % (2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def _filter_axis(x: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """Correlate every channel of ``x`` (N, C, *spatial) with ``kernel`` along ``axis``
    (a spatial axis, 2 = first), with the ``reflect`` border."""
    r = (kernel.numel() - 1) // 2
    n = x.shape[axis]
    xp = x.index_select(axis, _reflect_index(n, r, x.device)) if r else x
    moved = xp.movedim(axis, -1)
    shape = moved.shape
    flat = moved.reshape(-1, 1, shape[-1])
    out = F.conv1d(flat, kernel.to(x.dtype).view(1, 1, -1))
    return out.reshape(*shape[:-1], n).movedim(-1, axis)


_D1 = torch.tensor([-0.5, 0.0, 0.5])
_D2 = torch.tensor([1.0, -2.0, 1.0])


class FilterBank(nn.Module):
    """Fixed multi-scale filters of every input channel (no trainable weights).

    ``forward(x)`` with ``x`` of shape ``(N, C, *spatial)`` returns
    ``(N, C * len(sigmas) * per_sigma, *spatial)``; ``per_sigma`` is 4 in 2D (G, gradient,
    2 Hessian eigenvalues) and 3 in 3D (G, gradient, Laplacian).
    """

    def __init__(self, in_channels: int, dims: int, sigmas: tuple[float, ...] = SIGMAS):
        super().__init__()
        self.dims = int(dims)
        self.sigmas = tuple(float(s) for s in sigmas)
        self.in_channels = int(in_channels)
        self.per_sigma = 4 if self.dims == 2 else 3
        for i, s in enumerate(self.sigmas):
            self.register_buffer(f"k{i}", gaussian_kernel(s), persistent=False)
        self.register_buffer("d1", _D1.clone(), persistent=False)
        self.register_buffer("d2", _D2.clone(), persistent=False)

    @property
    def out_channels(self) -> int:
        """Number of filter responses."""
        return self.in_channels * len(self.sigmas) * self.per_sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter responses ``(N, out_channels, *spatial)`` (float32, no gradient)."""
        axes = list(range(2, 2 + self.dims))
        x = x.float()
        feats: list[torch.Tensor] = []
        with torch.no_grad():
            for i, s in enumerate(self.sigmas):
                g = x
                for ax in axes:
                    g = _filter_axis(g, getattr(self, f"k{i}"), ax)
                d = [_filter_axis(g, self.d1, ax) for ax in axes]
                grad = torch.sqrt(sum(di * di for di in d) + 1e-12) * s
                if self.dims == 2:
                    hyy = _filter_axis(g, self.d2, axes[0])
                    hxx = _filter_axis(g, self.d2, axes[1])
                    hxy = _filter_axis(d[0], self.d1, axes[1])
                    mean = 0.5 * (hyy + hxx)
                    rad = torch.sqrt(0.25 * (hyy - hxx) ** 2 + hxy * hxy + 1e-12)
                    feats += [g, grad, (mean + rad) * s * s, (mean - rad) * s * s]
                else:
                    lap = sum(_filter_axis(g, self.d2, ax) for ax in axes)
                    feats += [g, grad, lap * s * s]
        # order: per sigma, per feature kind, per channel
        return torch.cat(feats, dim=1)


def _conv1x1(dims: int, cin: int, cout: int) -> nn.Module:
    return (nn.Conv2d if dims == 2 else nn.Conv3d)(cin, cout, kernel_size=1)


class Stem(nn.Module):
    """The filter bank and its trainable branches (see the module docstring).

    Parameters
    ----------
    kind : str
        ``"pixel"``, ``"project"`` or ``"both"``.
    in_channels, dims, num_classes : int
        As in :class:`~.config.ModelConfig`.
    level_channels : int
        Channels of the first encoder level (for ``"project"``).
    """

    def __init__(self, kind: str, in_channels: int, dims: int, num_classes: int,
                 level_channels: int):
        super().__init__()
        if kind not in STEMS or kind == "none":
            raise ValueError(f"stem must be one of {STEMS[1:]}, got {kind!r}")
        self.kind = kind
        self.filters = FilterBank(in_channels, dims)
        f = self.filters.out_channels
        # per-filter standardisation, set from the painted pixels by fit_pixel_branch
        self.register_buffer("mean", torch.zeros(f))
        self.register_buffer("scale", torch.ones(f))
        self.pixel: nn.Module | None = None
        self.project: nn.Module | None = None
        if kind in ("pixel", "both"):
            last = _conv1x1(dims, _HIDDEN, num_classes)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.pixel = nn.Sequential(_conv1x1(dims, f, _HIDDEN), nn.ReLU(inplace=True), last)
        if kind in ("project", "both"):
            proj = _conv1x1(dims, f, level_channels)
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)
            self.project = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised filter responses of ``x`` (for :meth:`inject`, :meth:`add_logits`)."""
        shape = (1, -1) + (1,) * self.filters.dims
        return (self.filters(x) - self.mean.view(shape)) / self.scale.view(shape)

    def inject(self, level0: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """First encoder level's features plus the projection (unchanged without one)."""
        if self.project is None:
            return level0
        return level0 + self.project(feats.to(level0.dtype))

    def add_logits(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """The U-Net's logits plus the per-pixel branch's (unchanged without one)."""
        if self.pixel is None:
            return logits
        return logits + self.pixel(feats.to(logits.dtype))


def make_stem(config, level_channels: int) -> Stem | None:
    """The stem of a :class:`~.config.ModelConfig` (``None`` for ``stem="none"``)."""
    kind = getattr(config, "stem", "none")
    if kind == "none":
        return None
    return Stem(kind, int(config.in_channels), int(config.dims), int(config.num_classes),
                level_channels)


def receptive_radius() -> int:
    """Pixels the largest filter reaches on each side (4 x the largest sigma)."""
    return int(math.ceil(_TRUNCATE * max(SIGMAS)))


def _features_at(stem: Stem, image: np.ndarray, flat: np.ndarray, block: int = 256
                 ) -> torch.Tensor:
    """Raw filter responses ``(len(flat), F)`` of a ``(C, Y, X)`` image at flat pixel
    indices, computed in row blocks with a margin of the filters' reach (exact, and the
    memory stays at one block's responses)."""
    ny, nx = image.shape[1:]
    margin = receptive_radius() + 2
    rows, cols = np.divmod(flat, nx)
    out = torch.empty(len(flat), stem.filters.out_channels)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    for y0 in range(0, ny, block):
        sel = np.flatnonzero((rows >= y0) & (rows < y0 + block))
        if not sel.size:
            continue
        a, b = max(0, y0 - margin), min(ny, y0 + block + margin)
        with torch.no_grad():
            f = stem.filters(x[None, :, a:b].to(stem.mean.device))[0].cpu()
        out[torch.from_numpy(sel)] = f[:, rows[sel] - a, cols[sel]].T
    return out


def fit_pixel_branch(model: nn.Module, data, weights: torch.Tensor, *, steps: int, seed: int,
                     lr: float = 1e-2, max_pixels: int = 16384) -> dict[str, Any]:
    """Fit the stem's per-pixel branch on every painted pixel before training starts.

    What the random forest does: a classifier of the fixed filter responses trained on
    all the painted pixels at once (full batch, class-weighted cross-entropy, Adam), so
    that the U-Net's steps start from a per-pixel classifier and learn the spatial
    context on top of it. Also sets the stem's standardisation (mean and spread of
    every filter over the painted pixels). At most ``max_pixels`` pixels, drawn evenly
    over the classes with a seeded generator.

    Returns
    -------
    dict
        ``{"pixels", "steps", "loss", "seconds"}`` for the model record; ``{}`` when the
        model has no per-pixel branch or the data are not 2D.
    """
    import time

    stem = getattr(model, "stem", None)
    if stem is None or stem.pixel is None or stem.filters.dims != 2 or steps <= 0:
        return {}
    t0 = time.perf_counter()
    rng = np.random.default_rng([int(seed), 5])
    classes = sorted({k for s in data.samples for k in s.coords})
    per_class = max(1, max_pixels // max(1, len(classes)))
    xs, ys = [], []
    for k in classes:
        owners = [(i, s.coords[k]) for i, s in enumerate(data.samples) if k in s.coords]
        total = sum(c.size for _, c in owners)
        for i, coords in owners:
            take = min(coords.size, max(1, round(per_class * coords.size / total)))
            pick = np.sort(rng.choice(coords, take, replace=False))
            xs.append(_features_at(stem, data.samples[i].image, pick))
            ys.append(torch.full((take,), k - 1, dtype=torch.long))
    x = torch.cat(xs)
    y = torch.cat(ys)
    with torch.no_grad():
        stem.mean.copy_(x.mean(0))
        stem.scale.copy_(x.std(0).clamp_min(1e-6))
    dev = stem.mean.device
    x = ((x.to(dev) - stem.mean) / stem.scale).contiguous()
    y = y.to(dev)
    first, _, last = stem.pixel
    params = list(stem.pixel.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    w = weights.to(dev, torch.float32)
    loss = torch.zeros(())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        nn.init.kaiming_uniform_(first.weight, a=math.sqrt(5))
        for _ in range(int(steps)):
            opt.zero_grad(set_to_none=True)
            h = F.relu(F.linear(x, first.weight.flatten(1), first.bias))
            logits = F.linear(h, last.weight.flatten(1), last.bias)
            loss = F.cross_entropy(logits, y, weight=w)
            loss.backward()
            opt.step()
    return {"pixels": int(len(y)), "steps": int(steps), "loss": round(float(loss.detach()), 4),
            "seconds": round(time.perf_counter() - t0, 2)}


TRACK_FROM = 0.5  # fraction of the run at which the lowest-loss tracking restarts


def track_best_from(pixel_fit: dict, held: object | None) -> float:
    """Fraction of the run at which the Trainer restarts its lowest-loss tracking.

    After :func:`fit_pixel_branch` the training loss is lowest right at the start (the
    per-pixel classifier already fits the painted pixels; the U-Net's first steps raise
    the loss before they lower it), so the snapshot with the lowest training loss would
    be the untrained U-Net (measured: step 1 of 150 on arc2017 and the time-lapse). The
    tracking is therefore restarted half-way (the best loss so far is forgotten, the
    snapshots of the first half stay until a later one replaces them). Held-out strokes
    measure something else and need no restart; without a fitted branch: 0, no restart.
    """
    return TRACK_FROM if pixel_fit and held is None else 0.0


def fit_steps(train_config, started_from: str, start_kind: str) -> int:
    """Steps of :func:`fit_pixel_branch` for a training run: ``train_config.pixel_fit``
    when the per-pixel branch is new (a ``scratch`` or pretrained start), 0 when the
    pretrained object/background head was adopted (``started_from == "adopted"``: the
    pretrained network already segments the task; the branch then trains with it from
    zero instead of taking over the logits) or when continuing from a model (``"init"``,
    ``"file"``: its branch is already trained)."""
    if started_from == "adopted" or start_kind not in ("scratch", "pretrained",
                                                          "pretrained-features"):
        return 0
    return int(train_config.pixel_fit)
