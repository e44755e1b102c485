"""3D training data: volumes with strokes painted on a few slices -> 3D patches.

A user paints in napari's 2D view on a few slices of a 3D Labels layer (often along z
only, sometimes also in an orthogonal view); every unpainted voxel is 0 and ignored by
the loss. :class:`VolumeData` normalises each volume as a whole (the 1st/99.8th
percentiles of the volume, so that dim deep slices stay dim: per-slice normalisation
would turn the noise of an empty slice into bright "objects"), and
:class:`VolumeSampler` draws 3D patches centred (up to a random shift) on painted
voxels: a patch then holds the painted slice at a random depth and the unpainted
slices around it, which the network learns from through its 3D receptive field.

Augmentation respects the volume: flips in y and x and 90-degree rotations in the
y/x plane always; flips in z and rotations that involve z only when the voxels are
isotropic (:func:`~.anisotropy.is_isotropic`), since they would otherwise swap a fine
axis with a coarse one. CutMix pastes a box of another patch, image and labels.

:func:`make_data` and :func:`make_sampler` choose between these and the 2D classes of
:mod:`~.data`, so the :class:`~.train.Trainer` has one code path for both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .anisotropy import is_isotropic, patch_shape, pool_factors
from .data import (
    PatchSampler,
    Sample,
    TrainingData,
    _check_image,
    _check_pairs,
    _class_counts,
    _make_sample,
    _num_classes,
    _pad_min,
    _Sampler,
    apply_stats,
    plane_stats,
)
from .errors import DataError

__all__ = [
    "VolumeData",
    "VolumeSampler",
    "volume_stats",
    "normalize_volume",
    "make_data",
    "make_sampler",
    "cut_mix_nd",
    "VOLUME_SCOPE",
    "volume_setup",
]

VOLUME_SCOPE = "volume"  # normalization["scope"] of 3D models: statistics of the whole volume
_STATS_VOXELS = 1 << 20


def volume_stats(volume: Any, normalization: dict, channels: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel offset and scale of a whole volume ``(Z, Y, X[, C])``.

    Estimated on a regular subsample of at most about a million voxels (numpy, dask
    and memory-mapped arrays are read only there).
    """
    shape = np.shape(volume)
    nz, ny, nx = (int(s) for s in shape[:3])
    step = max(1, math.ceil((nz * ny * nx / _STATS_VOXELS) ** (1 / 3)))
    sub = np.asarray(volume[::step, ::step, ::step])
    flat = sub.reshape(sub.shape[0] * sub.shape[1], *sub.shape[2:])
    return plane_stats(flat, normalization, channels)


def normalize_block(block: Any, lo: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(Z, Y, X[, C])`` -> float32 ``(C, Z, Y, X)`` with given statistics."""
    arr = np.asarray(block)
    channels = 1 if arr.ndim == 3 else int(arr.shape[-1])
    out = np.empty((channels, *arr.shape[:3]), np.float32)
    for z in range(arr.shape[0]):
        out[:, z] = apply_stats(arr[z], lo, scale)
    return out


def normalize_volume(volume: Any, normalization: dict, channels: int) -> np.ndarray:
    """Normalise a whole volume to float32 ``(C, Z, Y, X)`` (stats from the volume)."""
    lo, scale = volume_stats(volume, normalization, channels)
    return normalize_block(volume, lo, scale)


def _need_volume(labels: np.ndarray, where: str) -> None:
    if labels.ndim != 3:
        raise DataError(
            f"A 3D model needs volumes (Z, Y, X); the labels{where} are 2D "
            f"{labels.shape}. Choose a 2D model for 2D images.")


class VolumeData:
    """Validated, normalised 3D training volumes (the 3D counterpart of TrainingData).

    Parameters
    ----------
    pairs : sequence of (image, labels)
        Volumes ``(Z, Y, X)`` or ``(Z, Y, X, C)`` and integer labels ``(Z, Y, X)``.
    normalization : dict
        Normalisation settings (:func:`~.data.plane_stats`), per volume.
    patch : sequence of int
        3D patch ``(pz, py, px)``; smaller volumes are padded (reflect; labels 0).
    rng : numpy.random.Generator, optional
        Subsamples the coordinates of very large classes.

    Raises
    ------
    DataError
        A 2D image, shape mismatch, bad labels, nothing or one class painted, NaN.
    """

    def __init__(self, pairs: Sequence[tuple[Any, Any]], normalization: dict,
                 patch: Sequence[int], rng: np.random.Generator | None = None) -> None:
        rng = rng if rng is not None else np.random.default_rng(0)
        pairs, self.shapes, self.in_channels = _check_pairs(pairs, _need_volume)
        checked = [(image, lab, where) for image, lab, where in pairs if lab.any()]
        if not checked:
            raise DataError(
                "No labels are painted yet. Paint a few strokes of each class (label 1, "
                "2, ...) on a few slices of the volume, then train.")
        self.num_classes = _num_classes(lab for _, lab, _ in checked)
        self.samples: list[Sample] = []
        self.painted_slices: list[int] = []
        for image, lab, where in checked:
            arr = np.asarray(image)
            _check_image(arr, where)
            img = _pad_min(normalize_volume(arr, normalization, self.in_channels), patch, "reflect")
            lab64 = _pad_min(lab.astype(np.int64), patch, "constant")
            self.samples.append(_make_sample(img, lab64, self.num_classes, rng))
            self.painted_slices.append(int(np.count_nonzero(lab.any(axis=(1, 2)))))
        self.class_counts = _class_counts(self.samples)

    @property
    def labeled_pixels(self) -> int:
        """Total number of painted voxels."""
        return int(self.class_counts.sum())


class VolumeSampler(_Sampler):
    """Draws augmented 3D patches, favouring patches around painted voxels.

    Parameters
    ----------
    data : VolumeData
        The volumes.
    patch : sequence of int
        ``(pz, py, px)``.
    augment : bool
        Flips/rotations (see the module docstring) and intensity jitter.
    label_fraction : float
        Probability that a patch is placed on a painted voxel of a uniformly chosen class.
    mix : float
        CutMix probability (with ``augment``).
    isotropic : bool
        Whether flips in z and rotations involving z are allowed.
    """

    def __init__(self, data: VolumeData, patch: Sequence[int], augment: bool = True,
                 label_fraction: float = 0.9, mix: float = 0.0, isotropic: bool = True) -> None:
        super().__init__(data, augment, label_fraction, mix)
        self.patch = tuple(int(p) for p in patch)
        self.shape = self.patch
        self.isotropic = bool(isotropic)

    @property
    def voxels(self) -> int:
        """Voxels per patch (for the GPU memory estimate)."""
        return math.prod(self.patch)

    def augment_one(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`augment_volume` (z only if ``self.isotropic``)."""
        return augment_volume(x, y, rng, self.isotropic)

    def mix_batch(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`cut_mix_nd` with probability ``self.mix``."""
        return cut_mix_nd(x, y, rng, self.mix)


def augment_volume(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                   isotropic: bool) -> tuple[np.ndarray, np.ndarray]:
    """In-plane flips and 90-degree rotations; z flips/rotations only if ``isotropic``.

    ``x`` is ``(C, Z, Y, X)``, ``y`` is ``(Z, Y, X)``; rotations need equal edges on the
    axes they swap (otherwise they are skipped).
    """
    for ax in ((1, 2) if not isotropic else (0, 1, 2)):
        if rng.random() < 0.5:
            x, y = np.flip(x, ax + 1), np.flip(y, ax)
    planes = [(1, 2)] + ([(0, 1), (0, 2)] if isotropic else [])
    for a, b in planes:
        k = int(rng.integers(4))
        if k and (k == 2 or y.shape[a] == y.shape[b]):
            x, y = np.rot90(x, k, axes=(a + 1, b + 1)), np.rot90(y, k, axes=(a, b))
    gain = rng.uniform(0.8, 1.2, size=(x.shape[0], 1, 1, 1))
    offset = rng.uniform(-0.1, 0.1, size=(x.shape[0], 1, 1, 1))
    return (x * gain + offset).astype(np.float32), np.ascontiguousarray(y)


def cut_mix_nd(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, probability: float,
               area: tuple[float, float] = (0.2, 0.6)) -> tuple[np.ndarray, np.ndarray]:
    """CutMix for patches of any dimension (:func:`~.data.cut_mix` in 2D): a box whose
    volume is ``area`` of the patch, taken with its labels from another patch."""
    b = x.shape[0]
    if b < 2 or probability <= 0:
        return x, y
    shape = y.shape[1:]
    xo, yo = x.copy(), y.copy()
    for i in range(b):
        if rng.random() >= probability:
            continue
        j = (i + 1 + int(rng.integers(b - 1))) % b
        frac = rng.uniform(*area) ** (1 / len(shape))
        win = []
        for n in shape:
            side = max(1, int(n * frac))
            o = int(rng.integers(0, n - side + 1))
            win.append(slice(o, o + side))
        xo[i][(slice(None), *win)] = x[j][(slice(None), *win)]
        yo[i][tuple(win)] = y[j][tuple(win)]
    return xo, yo


def volume_patch(patch_size: int, spacing: Sequence[float] | None, depth: int
                 ) -> tuple[int, int, int]:
    """The 3D training patch for ``TrainConfig.patch_size`` and the voxel spacing."""
    return patch_shape(patch_size, spacing, pool_factors(spacing, depth, 3))


def make_data(pairs: Sequence[tuple[Any, Any]], normalization: dict, patch_size: int,
              rng: np.random.Generator, dims: int = 2, spacing: Sequence[float] | None = None,
              depth: int = 3) -> TrainingData | VolumeData:
    """:class:`~.data.TrainingData` (2D) or :class:`VolumeData` (3D)."""
    if int(dims) == 3:
        normalization["scope"] = VOLUME_SCOPE
        return VolumeData(pairs, normalization, volume_patch(patch_size, spacing, depth), rng)
    return TrainingData(pairs, normalization, patch_size, rng)


def make_sampler(data: TrainingData | VolumeData, patch_size: int, *, augment: bool = True,
                 label_fraction: float = 0.9, mix: float = 0.0,
                 spacing: Sequence[float] | None = None, depth: int = 3
                 ) -> PatchSampler | VolumeSampler:
    """The patch sampler that fits ``data`` (2D or 3D)."""
    if isinstance(data, VolumeData):
        return VolumeSampler(data, volume_patch(patch_size, spacing, depth), augment=augment,
                             label_fraction=label_fraction, mix=mix,
                             isotropic=is_isotropic(spacing))
    return PatchSampler(data, patch_size, augment=augment, label_fraction=label_fraction,
                        mix=mix)


def volume_setup(model_config: Any, arch: dict | None, init: Any
                 ) -> tuple[int, tuple[float, ...] | None, int]:
    """``(dims, spacing, depth)`` of the model to train, known before it is built: from
    ``init``'s config, else ``arch`` over ``model_config`` (the Trainer's precedence)."""
    if init is not None:
        cfg = model_config or init.config
        return int(cfg.dims), getattr(cfg, "spacing", None), int(cfg.depth)
    arch = arch or {}
    get = (lambda k, d: arch.get(k, getattr(model_config, k, d)))  # noqa: E731
    return int(get("dims", 2)), get("spacing", None), int(get("depth", 3))


def volume_settings(arch: dict | None, settings: dict, model_config: Any, train_config: Any,
                    device: str | None) -> tuple[dict, dict]:
    """Fill the 3D sizes a caller did not give (patch, batch, width) from
    :func:`~.device.volume_defaults` for the device training will use."""
    from .device import resolve_device, volume_defaults

    arch, settings = dict(arch or {}), dict(settings)
    dev = resolve_device(device or getattr(train_config, "device", "auto"))
    spacing = arch.get("spacing", getattr(model_config, "spacing", None))
    ratio = 1.0 if spacing is None else float(spacing[1]) / float(spacing[0])
    defaults = volume_defaults(dev, patch_depth_ratio=ratio)
    if train_config is None:
        for key in ("patch_size", "batch_size"):
            settings.setdefault(key, defaults[key])
    if model_config is None:
        arch.setdefault("width", defaults["width"])
    return arch, settings
