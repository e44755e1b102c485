"""Superpixel voting of class probabilities, for colour photos.

Why. On a colour photo painted with plenty of strokes, a network's per-pixel classes
scatter inside textured regions (a sock pack, a shelf, a patterned cloth) and its
boundaries wander off the colour edges. SLIC superpixels (Achanta et al., "SLIC
Superpixels Compared to State-of-the-art Superpixel Methods", TPAMI 2012; the
scikit-image implementation) cut the photo into small regions of one colour that follow
its edges. Averaging the class probabilities inside each superpixel, at three sizes
(about 50, 100 and 200 pixels) and then over the sizes, removes the scattered pixels and
moves boundaries onto edges, while the three sizes keep one badly placed superpixel
from deciding a region alone.

Measured (``bench/superpixels.py``, docs/pretraining.md): on the realistic suite's
photos (ARC2017, VOC, a third of the VOC strokes; 3 stroke seeds each, 150 steps) it
lifts mean IoU by +0.007 to +0.097 (ARC2017 from 0.93-0.94x the random forest to
1.07-1.11x). On gray fluorescence nuclei it is harmful (nucleus IoU 0.89 to 0.60 with
one size of 100 pixels): superpixels of a few dozen pixels straddle the edges of small,
blurred nuclei, and the vote spreads that error. So ``TileConfig.superpixels="auto"``
applies it to 3-channel (RGB) 2D images only.

The settings below were chosen on those photos from a grid of sizes (25-200 pixels),
compactness (3, 10, 30) and mixes (0.5, 0.75, 1) and checked on stroke seeds the grid
did not see. scikit-image is imported lazily: importing this module needs numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .config import SUPERPIXEL_MODES as MODES

__all__ = ["AREAS", "COMPACTNESS", "MAX_PIXELS", "applies", "mean_vote", "segments", "vote",
           "vote_multiscale"]

AREAS: tuple[int, ...] = (50, 100, 200)
"""Mean superpixel areas (pixels) whose votes are averaged."""
COMPACTNESS = 10.0
"""SLIC compactness: scikit-image's default for Lab colour (gray images are scaled to
0-100, the range of Lab lightness)."""
MAX_PIXELS = 4096 * 4096
"""Planes above this many pixels are not voted (SLIC's time and memory grow with the
plane). The block-wise runner votes each block whose region (the block and its tile
halo) stays under it (with 256-pixel tiles, blocks up to 3840 pixels after rounding to
whole chunks); the region of a default 4096-pixel block is 4288 x 4288, so it is not
voted (a warning says so)."""


def applies(mode: str, in_channels: int, dims: int = 2) -> bool:
    """Whether the vote runs for a model with ``in_channels`` inputs.

    ``"auto"``: 2D models on 3-channel (RGB) images; ``"on"``: every 2D model;
    ``"off"``: never. 3D models are never voted.
    """
    if mode not in MODES:
        raise ValueError(f"superpixels must be one of {MODES}, got {mode!r}")
    if int(dims) != 2 or mode == "off":
        return False
    return mode == "on" or int(in_channels) == 3


def segments(plane: np.ndarray, area: int, compactness: float = COMPACTNESS) -> np.ndarray:
    """SLIC superpixels of a ``(Y, X)`` gray or ``(Y, X, C)`` image, about ``area``
    pixels each.

    Three channels are read as RGB (divided by the plane's maximum, then converted to
    Lab by scikit-image); gray and other channel counts are scaled to 0-100 between
    their 0.5 and 99.5 percentiles.

    Returns
    -------
    numpy.ndarray
        int labels from 0, shape ``(Y, X)``.
    """
    from skimage.segmentation import slic

    img = np.asarray(plane, np.float32)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    rgb = img.ndim == 3 and img.shape[-1] == 3
    if rgb:
        img = img / max(float(img.max()), 1.0)
    else:
        lo, hi = np.percentile(img, (0.5, 99.5))
        img = np.clip((img - lo) / max(float(hi - lo), 1e-6), 0, 1) * 100.0
    n = max(1, img.shape[0] * img.shape[1] // int(area))
    return slic(img, n_segments=n, compactness=float(compactness),
                channel_axis=-1 if img.ndim == 3 else None, start_label=0,
                convert2lab=rgb)


def vote(prob: np.ndarray, seg: np.ndarray, mix: float = 1.0) -> np.ndarray:
    """``(1 - mix) * prob + mix * (prob averaged over each superpixel of seg)``.

    Parameters
    ----------
    prob : numpy.ndarray
        ``(K, Y, X)`` class probabilities.
    seg : numpy.ndarray
        ``(Y, X)`` superpixel labels from 0.
    mix : float
        1: every pixel takes its superpixel's mean; 0: unchanged.
    """
    flat = seg.ravel()
    counts = np.maximum(np.bincount(flat), 1).astype(np.float64)
    means = np.stack([np.bincount(flat, weights=prob[c].ravel(), minlength=counts.size)
                      for c in range(prob.shape[0])]) / counts
    pooled = means[:, flat].reshape(prob.shape).astype(prob.dtype, copy=False)
    return pooled if mix == 1.0 else (1 - mix) * prob + mix * pooled


def mean_vote(prob: np.ndarray, segs: Iterable[np.ndarray]) -> np.ndarray:
    """The mean of the full votes of ``prob`` over each superpixel map of ``segs``."""
    out = np.zeros_like(prob)
    n = 0
    for seg in segs:
        out += vote(prob, seg)
        n += 1
    out /= max(n, 1)
    return out


def vote_multiscale(prob: np.ndarray, plane: np.ndarray, areas: tuple[int, ...] = AREAS,
                    compactness: float = COMPACTNESS) -> np.ndarray:
    """The mean of the full votes over superpixels of every size in ``areas``.

    Parameters
    ----------
    prob : numpy.ndarray
        ``(K, Y, X)`` float32 class probabilities of ``plane``.
    plane : numpy.ndarray
        The raw image plane, ``(Y, X)`` or ``(Y, X, C)``.

    Returns
    -------
    numpy.ndarray
        ``(K, Y, X)`` float32 probabilities (each pixel's still sum to 1).
    """
    return mean_vote(prob, (segments(plane, area, compactness) for area in areas))
