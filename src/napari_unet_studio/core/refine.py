"""Extras that make a U-Net trained on sparse scribbles follow the image: a pairwise
(local CRF) loss on the unpainted pixels, and test-time augmentation.

Why. Scribbles leave most pixels, and nearly every class boundary, unpainted. A network
trained only on the painted pixels may put a boundary anywhere in the unpainted gap: on
the nuclei sample (background strokes kept > 6 px from any nucleus) it learns "close to
a bright blob = nucleus" and grows every nucleus by its 3-5 px halo of glow. The
pairwise loss below (a local form of the regularised losses of Tang et al., "On
Regularized Losses for Weakly-supervised CNN Segmentation", ECCV 2018, and of the gated
CRF loss of Obukhov et al., 2019) makes neighbouring pixels of similar intensity take
the same class, so that the cheapest place for a boundary is where the image changes
fastest. It needs no labels and costs about 4 % of a CPU training step.

Measured (``bench/scribbles_vs_rf.py``, docs/benchmarks.md): with weight 5, sigma 0.75 x
:func:`neighbour_scale`, from 30 % of the training on, it halves the seed-to-seed spread
on sparse nuclei strokes but does not lift the mean above a random forest, and it hurts
on a textured RGB scene (inside a textured region neighbours differ about as much as
across a boundary, so it mostly smooths and can merge classes). It is therefore not
used by the engine's defaults. Test-time augmentation (8 flips/rotations) gave a small,
nearly consistent gain (+0.001 to +0.010 IoU).

Pure torch/numpy: no Qt, no napari.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = [
    "DEFAULT_OFFSETS",
    "neighbour_scale",
    "pairwise_affinity_loss",
    "dihedral_transforms",
    "tta_probabilities",
]

DEFAULT_OFFSETS: tuple[int, ...] = (1, 2, 4)
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


def neighbour_scale(image: np.ndarray, offsets: Sequence[int] = DEFAULT_OFFSETS) -> float:
    """Typical colour difference between neighbouring pixels of a normalised image.

    The median, over all pixel pairs at the given offsets (4 directions each), of the
    Euclidean channel distance. It measures noise and fine texture, so a pairwise
    ``sigma`` proportional to it adapts to each image.

    Parameters
    ----------
    image : numpy.ndarray
        ``(C, Y, X)`` float image (normalised like the network's input).
    offsets : sequence of int
        Pixel distances.

    Returns
    -------
    float
        Positive (a tiny floor for constant images).
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[None]
    diffs = []
    for d in offsets:
        for dy, dx in _DIRECTIONS:
            a, b = _shifted_pair(img, dy * d, dx * d)
            if a.size:
                diffs.append(np.sqrt(((a - b) ** 2).sum(0)).ravel())
    if not diffs:
        return 1e-3
    return max(float(np.median(np.concatenate(diffs))), 1e-3)


def _shifted_pair(a, dy: int, dx: int):
    """Views ``a[..., p]`` and ``a[..., p + (dy, dx)]`` over the pixels where both exist."""
    h, w = a.shape[-2:]
    y0, y1 = max(0, -dy), h - max(0, dy)
    x0, x1 = max(0, -dx), w - max(0, dx)
    return (a[..., y0:y1, x0:x1], a[..., y0 + dy:y1 + dy, x0 + dx:x1 + dx])


def pairwise_affinity_loss(
    probs: torch.Tensor,
    image: torch.Tensor,
    sigma: float,
    offsets: Sequence[int] = DEFAULT_OFFSETS,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Local CRF loss: neighbours of similar colour should get the same class.

    ``mean over pairs (i, j) of  w_ij * (1 - sum_k p_ik p_jk)`` with
    ``w_ij = exp(-|I_i - I_j|^2 / (2 sigma^2))``, for the pixel pairs at each offset in 4
    directions (horizontal, vertical, both diagonals). ``1 - p_i . p_j`` is 0 when both
    pixels are confidently the same class and 1 when they are confidently different, so
    the loss is the expected weighted cut: a boundary costs little where the image
    changes by much more than ``sigma`` and a lot inside a uniform region.

    Parameters
    ----------
    probs : torch.Tensor
        ``(N, K, Y, X)`` softmax probabilities.
    image : torch.Tensor
        ``(N, C, Y, X)`` the network's input (no gradient is needed).
    sigma : float
        Colour scale of the affinity (same units as ``image``); see
        :func:`neighbour_scale`.
    offsets : sequence of int
        Pixel distances of the pairs.
    labels : torch.Tensor, optional
        ``(N, Y, X)``, 0 = unpainted. When given, only pairs with at least one unpainted
        pixel count (painted pairs are already supervised).

    Returns
    -------
    torch.Tensor
        Scalar in ``[0, 1]``.
    """
    if probs.ndim != 4 or image.ndim != 4:
        raise ValueError("pairwise_affinity_loss expects (N, K, Y, X) and (N, C, Y, X) tensors")
    if float(sigma) <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    img = image.detach().to(probs.dtype)
    unl = None if labels is None else (labels == 0)
    inv = 1.0 / (2.0 * float(sigma) ** 2)
    total = probs.new_zeros(())
    count = 0
    for d in offsets:
        for dy, dx in _DIRECTIONS:
            pa, pb = _shifted_pair(probs, dy * d, dx * d)
            if pa.numel() == 0:
                continue
            ia, ib = _shifted_pair(img, dy * d, dx * d)
            w = torch.exp(-((ia - ib) ** 2).sum(1) * inv)
            cut = 1.0 - (pa * pb).sum(1)
            if unl is not None:
                ua, ub = _shifted_pair(unl, dy * d, dx * d)
                keep = (ua | ub).to(probs.dtype)
                total = total + (w * cut * keep).sum() / keep.sum().clamp_min(1.0)
            else:
                total = total + (w * cut).mean()
            count += 1
    return total / max(count, 1)


def dihedral_transforms(n: int = 8) -> list[tuple[int, bool]]:
    """The first ``n`` of the 8 symmetries of the square as ``(quarter_turns, flip)``.

    ``n`` = 1 (identity), 2 (identity + left-right flip), 4 (+ up-down flip, 180 degree
    turn) or 8 (all rotations and flips).
    """
    if n not in (1, 2, 4, 8):
        raise ValueError(f"n must be 1, 2, 4 or 8, got {n}")
    order = [(0, False), (0, True), (2, True), (2, False),
             (1, False), (1, True), (3, False), (3, True)]
    return order[:n]


def _apply(a: np.ndarray, k: int, flip: bool, axes: tuple[int, int]) -> np.ndarray:
    out = np.rot90(a, k, axes=axes)
    if flip:
        out = np.flip(out, axis=axes[1])
    return out


def _undo(a: np.ndarray, k: int, flip: bool, axes: tuple[int, int]) -> np.ndarray:
    out = np.flip(a, axis=axes[1]) if flip else a
    return np.rot90(out, -k, axes=axes)


def tta_probabilities(
    predict_probs: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    n: int = 8,
    channel_last: bool = False,
) -> np.ndarray:
    """Average class probabilities over flips and 90-degree rotations of a 2D image.

    Parameters
    ----------
    predict_probs : callable
        ``image -> (K, Y, X)`` probabilities; called ``n`` times with transformed,
        contiguous copies of ``image`` (rotations swap Y and X).
    image : numpy.ndarray
        ``(Y, X)`` or, with ``channel_last``, ``(Y, X, C)``.
    n : int
        Number of transforms (see :func:`dihedral_transforms`).
    channel_last : bool
        Whether the last axis of ``image`` holds channels.

    Returns
    -------
    numpy.ndarray
        float32 ``(K, Y, X)``, the mean of the back-transformed probabilities.
    """
    img = np.asarray(image)
    if img.ndim != (3 if channel_last else 2):
        raise ValueError("tta_probabilities works on one 2D image (Y, X) or (Y, X, C)")
    acc: np.ndarray | None = None
    for k, flip in dihedral_transforms(n):
        probs = np.asarray(predict_probs(np.ascontiguousarray(_apply(img, k, flip, (0, 1)))))
        back = _undo(probs, k, flip, (1, 2)).astype(np.float32)
        acc = back if acc is None else acc + back
    assert acc is not None
    return np.ascontiguousarray(acc / len(dihedral_transforms(n)))
