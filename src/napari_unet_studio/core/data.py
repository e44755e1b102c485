"""Image/label pairs -> normalised 2D training samples -> augmented patches.

Label value 0 means "not painted" and is ignored; values 1..K are classes. The labels
give the spatial shape: an image of the same shape has one channel, an image with one
extra trailing axis of size <= 4 is channel-last (RGB, multichannel). Stacks
``(Z or T, Y, X[, C])`` contribute only the slices that have labels (a 2D model is
trained on them).

Normalisation is per 2D slice and per channel (:mod:`~.normalize`, re-exported here):
the ``low``/``high`` percentiles map to 0/1. The same functions are used at prediction,
so both see identical inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError
from .normalize import apply_stats, normalize_plane, plane_stats  # noqa: F401 - re-exported

__all__ = [
    "MAX_CHANNELS",
    "MAX_CLASSES",
    "MAX_PAINTED_CLASSES",
    "Sample",
    "TrainingData",
    "PatchSampler",
    "cut_mix",
    "plane_stats",
    "apply_stats",
    "normalize_plane",
    "class_weights",
]

MAX_CHANNELS = 4
MAX_CLASSES = 255  # highest label value
MAX_PAINTED_CLASSES = 64  # more distinct painted values means the wrong layer was chosen
_MAX_COORDS = 200_000  # per class and sample, to bound memory for dense masks


def _check_labels(labels: Any, where: str) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.dtype == bool:
        return lab.astype(np.uint8)
    if lab.dtype.kind == "f":
        if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
            raise DataError(
                f"The labels{where} contain non-integer values. Labels must be whole "
                "numbers: 0 = not painted, 1, 2, ... = classes. Use a Labels layer."
            )
        lab = lab.astype(np.int64)
    elif lab.dtype.kind not in "ui":
        raise DataError(f"The labels{where} have type {lab.dtype}; they must be integers.")
    if lab.ndim not in (2, 3):
        raise DataError(
            f"The labels{where} have {lab.ndim} dimension(s) {lab.shape}; expected a 2D "
            "image (Y, X) or a stack (Z, Y, X)."
        )
    if lab.size and lab.min() < 0:
        raise DataError(f"The labels{where} contain negative values; use 0 for unpainted.")
    return lab


def _channels_of(image_shape: tuple, labels_shape: tuple, where: str) -> int:
    if tuple(image_shape) == tuple(labels_shape):
        return 1
    if (
        len(image_shape) == len(labels_shape) + 1
        and tuple(image_shape[:-1]) == tuple(labels_shape)
        and 1 <= image_shape[-1] <= MAX_CHANNELS
    ):
        return int(image_shape[-1])
    hint = ""
    if len(image_shape) == len(labels_shape) + 1 and tuple(image_shape[1:]) == tuple(labels_shape):
        hint = (" Channels must be the last axis (Y, X, C)." if image_shape[0] <= MAX_CHANNELS
                else " For a stack, the labels must be a stack of the same size (Z, Y, X).")
    raise DataError(
        f"The image{where} has shape {tuple(image_shape)} but its labels have shape "
        f"{tuple(labels_shape)}; they must cover the same pixels (the image may have one "
        f"extra last axis of up to {MAX_CHANNELS} channels).{hint}"
    )


def _too_many_classes(what: str) -> str:
    return (
        f"The labels contain {what}; at most {MAX_PAINTED_CLASSES} classes (label values "
        f"up to {MAX_CLASSES}) are supported. Did you choose the image, or an instance "
        "segmentation (one number per object), as labels? Paint classes 1, 2, ... instead."
    )


@dataclass
class Sample:
    """One labeled 2D plane, normalised and padded to at least the patch size."""

    image: np.ndarray  # float32 (C, Y, X)
    labels: np.ndarray  # int64 (Y, X), 0 = unlabeled
    coords: dict[int, np.ndarray] = field(default_factory=dict)  # class -> flat indices
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per class 1..K


def _pad_min(arr: np.ndarray, shape: Sequence[int], mode: str) -> np.ndarray:
    """Pad the trailing ``len(shape)`` axes symmetrically up to at least ``shape``.

    ``mode`` is a :func:`numpy.pad` mode; ``"reflect"`` falls back to ``"edge"`` on an
    axis of one pixel.
    """
    lead = arr.ndim - len(shape)
    pads = [(0, 0)] * lead + [((max(0, t - s)) // 2, max(0, t - s) - max(0, t - s) // 2)
                              for s, t in zip(arr.shape[lead:], shape)]
    if not any(p != (0, 0) for p in pads):
        return arr
    if mode == "reflect" and min(arr.shape[lead:]) < 2:
        mode = "edge"
    return np.pad(arr, pads, mode=mode)


def _check_pairs(
    pairs: Sequence[tuple[Any, Any]],
    check: Callable[[np.ndarray, str], None] | None = None,
) -> tuple[list[tuple[Any, np.ndarray, str]], list[tuple[int, ...]], int]:
    """Validate training pairs (a single ``(image, labels)`` pair is accepted too).

    ``check(labels, where)`` may refuse a pair's checked labels before its image is
    looked at (``where``: ``" #2"``, or ``""`` for a single pair). Returns every
    ``(image, labels, where)``, the image shapes and the channel count they share.
    """
    if isinstance(pairs, tuple) and len(pairs) == 2 and not isinstance(pairs[0], tuple):
        pairs = [pairs]  # a single (image, labels) pair
    pairs = list(pairs)
    if not pairs:
        raise DataError("No images were given for training.")
    checked: list[tuple[Any, np.ndarray, str]] = []
    shapes: list[tuple[int, ...]] = []
    in_channels: int | None = None
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataError("Training data must be a list of (image, labels) pairs.")
        image, labels = pair
        where = f" #{i + 1}" if len(pairs) > 1 else ""
        lab = _check_labels(labels, where)
        if check is not None:
            check(lab, where)
        img_shape = tuple(int(s) for s in np.shape(image))
        channels = _channels_of(img_shape, lab.shape, where)
        if in_channels is None:
            in_channels = channels
        elif channels != in_channels:
            raise DataError(
                f"Image{where} has {channels} channel(s) but the first image has "
                f"{in_channels}; all training images need the same channels."
            )
        shapes.append(img_shape)
        checked.append((image, lab, where))
    assert in_channels is not None
    return checked, shapes, in_channels


def _num_classes(labels: Iterable[np.ndarray]) -> int:
    """The highest painted label value (at most :data:`MAX_CLASSES`)."""
    num_classes = int(max(int(lab.max()) for lab in labels))
    if num_classes > MAX_CLASSES:
        raise DataError(_too_many_classes(f"values up to {num_classes}"))
    return num_classes


def _check_image(image: np.ndarray, where: str) -> None:
    """Raise :class:`DataError` unless ``image`` is numeric and finite."""
    if image.dtype.kind not in "buif":
        raise DataError(f"The image{where} has type {image.dtype}; it must be numeric.")
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise DataError(
            f"The image{where} contains NaN or infinite values. Replace them (e.g. "
            "with 0) before training."
        )


def _make_sample(image: np.ndarray, labels: np.ndarray, num_classes: int,
                rng: np.random.Generator) -> Sample:
    """A :class:`Sample` of a normalised, padded image and its int64 labels (any
    dimension): per-class counts and flat coordinates of the painted pixels."""
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=num_classes + 1)[1:].astype(np.int64)
    coords = {}
    for k in np.flatnonzero(counts) + 1:
        idx = np.flatnonzero(flat == k)
        if idx.size > _MAX_COORDS:
            idx = np.sort(rng.choice(idx, _MAX_COORDS, replace=False))
        coords[int(k)] = idx
    return Sample(image, labels, coords, counts)


def _class_counts(samples: Sequence[Sample]) -> np.ndarray:
    """Painted pixels per class over all samples; at least two classes must be painted."""
    class_counts = np.sum([s.counts for s in samples], axis=0)
    present = int(np.count_nonzero(class_counts))
    if present > MAX_PAINTED_CLASSES:
        raise DataError(_too_many_classes(f"{present} different values"))
    if present < 2:
        only = int(np.flatnonzero(class_counts)[0]) + 1
        raise DataError(
            f"Only one class is painted (label {only}). Paint at least two classes, "
            "e.g. 1 = background and 2 = object, so the network can tell them apart."
        )
    return class_counts


class TrainingData:
    """Validated, normalised training samples from image/label pairs.

    Parameters
    ----------
    pairs : sequence of (image, labels)
        Numpy (or array-like) images and integer labels; see the module docstring.
    normalization : dict
        Normalisation settings (see :func:`plane_stats`).
    patch_size : int
        Samples smaller than this are padded (image: reflect, labels: 0).
    rng : numpy.random.Generator, optional
        Used to subsample pixel coordinates of large classes.

    Raises
    ------
    DataError
        No pairs, shape mismatch, non-integer or negative labels, nothing painted,
        only one class painted, NaN/inf in the image, inconsistent channel counts.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Any, Any]],
        normalization: dict,
        patch_size: int,
        rng: np.random.Generator | None = None,
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng(0)
        checked, self.shapes, self.in_channels = _check_pairs(pairs)
        self.samples: list[Sample] = []
        planes: list[tuple[np.ndarray, np.ndarray, str]] = []
        for image, lab, where in checked:
            stack = lab.ndim == 3
            for z in range(lab.shape[0]) if stack else [None]:
                plane_lab = lab[z] if stack else lab
                if not plane_lab.any():
                    continue
                plane_img = np.asarray(image[z] if stack else image)
                tag = f"{where}, slice {z}" if stack else where
                planes.append((plane_img, plane_lab, tag))
        if not planes:
            raise DataError(
                "No labels are painted yet. Paint a few strokes of each class (label 1, "
                "2, ...) on the image, then train."
            )
        self.num_classes = _num_classes(p[1] for p in planes)
        for plane_img, plane_lab, tag in planes:
            _check_image(plane_img, tag)
            img = normalize_plane(plane_img, normalization, self.in_channels)
            img = _pad_min(img, (patch_size, patch_size), "reflect")
            lab = _pad_min(plane_lab.astype(np.int64), (patch_size, patch_size), "constant")
            self.samples.append(_make_sample(img, lab, self.num_classes, rng))
        self.class_counts = _class_counts(self.samples)

    @property
    def labeled_pixels(self) -> int:
        """Total number of painted pixels."""
        return int(self.class_counts.sum())


WEIGHT_CLIP = (0.2, 5.0)  # class_weights' default clip; (1, 1): every class weight 1
WEIGHT_POWER = 0.5  # class_weights' exponent of the inverse frequency (0: every weight 1)


def class_weights(counts: np.ndarray, clip: tuple[float, float] | None = None) -> np.ndarray:
    """Inverse-frequency class weights (square-rooted, clipped, mean 1 over present).

    A class painted 100x less than another gets 10x its weight (then clipped to
    ``clip``, default :data:`WEIGHT_CLIP`), so a rare class still learns without one
    stroke dominating the loss (the exponent, 1/2, is :data:`WEIGHT_POWER`). Classes
    with no painted pixels get weight 1 (they do not occur in the loss anyway).
    """
    clip = WEIGHT_CLIP if clip is None else clip
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    w = np.ones_like(counts)
    if present.any():
        freq = counts[present] / counts[present].sum()
        ratio = (1.0 / present.sum()) / freq
        raw = np.sqrt(ratio) if WEIGHT_POWER == 0.5 else ratio ** float(WEIGHT_POWER)
        raw = np.clip(raw, *clip)
        w[present] = raw / raw.mean()
    return w.astype(np.float32)


class _Sampler:
    """What the 2D and 3D patch samplers share: the choice of where a patch lies.

    ``draw`` cuts patches of ``self.shape`` (the patch's spatial shape) from the
    samples; subclasses give the augmentation (:meth:`augment_one`) and the mixing
    (:meth:`mix_batch`).
    """

    shape: tuple[int, ...]

    def __init__(self, data: Any, augment: bool, label_fraction: float, mix: float) -> None:
        if not 0.0 <= float(mix) <= 1.0:
            raise ValueError(f"mix must be a probability in [0, 1], got {mix}")
        self.data = data
        self.augment = augment
        self.label_fraction = label_fraction
        self.mix = float(mix)

    def augment_one(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment one patch ``x`` ``(C, *shape)`` and its labels ``y``."""
        raise NotImplementedError

    def mix_batch(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
        """CutMix the patches of a batch with probability ``self.mix``."""
        raise NotImplementedError

    def _origin(self, shape: Sequence[int], rng: np.random.Generator,
                center: Sequence[int] | None) -> list[int]:
        if center is None:
            return [int(rng.integers(0, n - p + 1)) for n, p in zip(shape, self.shape)]
        return [int(np.clip(c - rng.integers(0, p), 0, n - p))
                for c, n, p in zip(center, shape, self.shape)]

    def draw(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Return ``x`` float32 ``(B, C, *shape)`` and ``y`` int64 ``(B, *shape)``."""
        samples = self.data.samples
        classes = [int(k) + 1 for k in np.flatnonzero(self.data.class_counts)]
        areas = np.array([s.labels.size for s in samples], dtype=np.float64)
        xs = np.empty((batch_size, self.data.in_channels or 1, *self.shape), np.float32)
        ys = np.empty((batch_size, *self.shape), np.int64)
        for b in range(batch_size):
            if rng.random() < self.label_fraction:
                k = classes[int(rng.integers(len(classes)))]
                weights = np.array([s.counts[k - 1] if k - 1 < len(s.counts) else 0
                                    for s in samples], dtype=np.float64)
                sample = samples[int(rng.choice(len(samples), p=weights / weights.sum()))]
                flat = sample.coords[k][int(rng.integers(sample.coords[k].size))]
                center = np.unravel_index(int(flat), sample.labels.shape)
            else:
                sample = samples[int(rng.choice(len(samples), p=areas / areas.sum()))]
                center = None
            origin = self._origin(sample.labels.shape, rng, center)
            win = tuple(slice(o, o + p) for o, p in zip(origin, self.shape))
            x = sample.image[(slice(None), *win)]
            y = sample.labels[win]
            if self.augment:
                x, y = self.augment_one(x, y, rng)
            xs[b] = x
            ys[b] = y
        if self.augment and self.mix > 0:
            xs, ys = self.mix_batch(xs, ys, rng)
        return xs, ys


class PatchSampler(_Sampler):
    """Draws augmented training patches, favouring patches that contain labels.

    Parameters
    ----------
    data : TrainingData
        The samples.
    patch_size : int
        Square patch edge.
    augment : bool
        Random flips, 90-degree rotations and intensity jitter.
    label_fraction : float
        Probability that a patch is centred (up to a random shift) on a painted pixel
        of a class chosen uniformly among the painted classes.
    mix : float
        Probability that a patch gets a square of another patch of the batch pasted
        into it, image and labels together (CutMix, see :func:`cut_mix`). Only with
        ``augment``.
    """

    def __init__(
        self, data: TrainingData, patch_size: int, augment: bool = True,
        label_fraction: float = 0.9, mix: float = 0.0,
    ) -> None:
        super().__init__(data, augment, label_fraction, mix)
        self.patch = int(patch_size)
        self.shape = (self.patch, self.patch)

    def augment_one(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Flips, 90-degree rotation and intensity jitter (:func:`_augment`)."""
        return _augment(x, y, rng)

    def mix_batch(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`cut_mix` with probability ``self.mix``."""
        return cut_mix(x, y, rng, self.mix)


def cut_mix(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator, probability: float,
    area: tuple[float, float] = (0.2, 0.6),
) -> tuple[np.ndarray, np.ndarray]:
    """Paste a random square of another patch of the batch, with its labels (CutMix).

    Why: painted strokes rarely touch a class boundary (users paint inside objects and
    on clear background), so nothing tells the network where a boundary lies, and it
    learns "another class is near" as a cue: objects come out too large (measured on
    the 4-class RGB scene, docs/benchmarks.md). A pasted square puts painted pixels
    of one class right next to the texture of another, with their true labels on both
    sides, so the network learns to decide from what is at the pixel, not from what is
    nearby.

    Parameters
    ----------
    x : numpy.ndarray
        ``(B, C, P, P)`` patches.
    y : numpy.ndarray
        ``(B, P, P)`` labels (0 = not painted).
    rng : numpy.random.Generator
        Random source.
    probability : float
        Chance that each patch receives a square.
    area : tuple of float
        Range of the square's area as a fraction of the patch.

    Returns
    -------
    x, y : numpy.ndarray
        New arrays; a patch that receives a square takes image *and* labels inside
        it from one other patch of the batch (a batch of one is returned unchanged).
    """
    b, p = x.shape[0], x.shape[-1]
    if b < 2 or probability <= 0:
        return x, y
    xo, yo = x.copy(), y.copy()
    for i in range(b):
        if rng.random() >= probability:
            continue
        j = (i + 1 + int(rng.integers(b - 1))) % b  # any other patch of the batch
        side = max(1, int(p * math.sqrt(rng.uniform(*area))))
        y0, x0 = (int(v) for v in rng.integers(0, p - side + 1, size=2))
        win = (slice(y0, y0 + side), slice(x0, x0 + side))
        xo[i][(slice(None), *win)] = x[j][(slice(None), *win)]
        yo[i][win] = y[j][win]
    return xo, yo


def _augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator):
    """Flips, 90-degree rotation and per-channel intensity jitter (gain, offset)."""
    if rng.random() < 0.5:
        x, y = x[:, ::-1], y[::-1]
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, ::-1]
    k = int(rng.integers(4))
    if k:
        x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
    gain = rng.uniform(0.8, 1.2, size=(x.shape[0], 1, 1))
    offset = rng.uniform(-0.1, 0.1, size=(x.shape[0], 1, 1))
    return (x * gain + offset).astype(np.float32), np.ascontiguousarray(y)
