"""Edge snapping: each object's threshold chosen where the image has its edge.

Why. Strokes that leave a gap at every boundary (as real users paint) tell the network
nothing about where inside that gap an object ends, so its 0.5 contour can sit a pixel
inside or outside the image's edge, and on small nuclei one pixel is a large part of the
score. The image itself says where the edge is: the gradient is highest there. For
each object of a two-class prediction this module tries the thresholds 0.3-0.7 of the
object class's probability and keeps the one whose contour has the highest mean image
gradient (Sobel of the image smoothed with a Gaussian of sigma 1). No labels are used;
the probabilities are not changed, only which pixels the labels give to the object.

Measured (``bench/edge_snap.py``, docs/benchmarks.md): on the realistic suite's gray
nuclei with gap strokes (six cases, stroke seeds 0-5, 150 steps from the shipped start)
it lifts mean IoU on 28 of 36 case-seeds (by up to +0.021, +0.007 on average) and lowers
it on 8 (by at most 0.010; one BBBC007 image on all six seeds, where the plain 0.5
threshold is already the best one). The thresholds 0.2-0.8 and 0.4-0.6, a margin before
leaving 0.5, one threshold per image and moving each contour by up to 2 pixels were
tried on seeds 0-2; seeds 3-5 checked the choice.

``TileConfig.edges="auto"`` applies it to 2D models of one input channel and two classes
(gray objects on a background); ``"on"`` to every 2D two-class model; ``"off"`` never.
The object class is the class with fewer pixels in the plain (argmax) prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import EDGE_MODES as MODES

__all__ = ["GROW", "MAX_PIXELS", "SIGMA", "THRESHOLDS", "applies", "choose_per_object",
           "gradient", "regions_of", "snap", "snap_labels"]

THRESHOLDS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
"""Candidate thresholds of the object class's probability."""
GROW = 3
"""Each object's region: its plain (0.5) pixels grown by this many pixels."""
SIGMA = 1.0
"""Gaussian smoothing of the image before its gradient."""
MAX_PIXELS = 4608 * 4608
"""Planes above this many pixels are not snapped. Prediction holds the plane's class
probabilities for it (8 bytes per pixel); ``bench/edge_snap.py --memory`` measured about
4 s and 0.33 GB at the peak on a 4288 x 4288 plane of 11618 discs, the region of a
default 4096-pixel block of the block-wise runner, which snaps each block."""


def applies(mode: str, in_channels: int, n_classes: int, dims: int = 2) -> bool:
    """Whether snapping runs for a model with ``in_channels`` inputs and ``n_classes``.

    ``"auto"``: 2D, one channel, two classes; ``"on"``: 2D, two classes; ``"off"``: never.
    """
    if mode not in MODES:
        raise ValueError(f"edges must be one of {MODES}, got {mode!r}")
    if mode == "off" or int(dims) != 2 or int(n_classes) != 2:
        return False
    return mode == "on" or int(in_channels) == 1


def gradient(plane: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """Gradient magnitude of a ``(Y, X)`` or ``(Y, X, C)`` plane smoothed by ``sigma``
    (channels: the sum of their magnitudes)."""
    from scipy import ndimage as ndi

    img = np.asarray(plane, np.float32)
    chans = [img] if img.ndim == 2 else [img[..., c] for c in range(img.shape[-1])]
    total = None
    for chan in chans:
        g = ndi.gaussian_filter(chan, sigma, output=np.float32)
        gy = ndi.sobel(g, 0, output=np.float32)
        gx = ndi.sobel(g, 1, output=g)  # scipy's sobel filters its output in place too
        np.hypot(gy, gx, out=gy)
        del g, gx
        total = gy if total is None else np.add(total, gy, out=total)
    return total


def _contour(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return mask & ~ndi.binary_erosion(mask)


def choose_per_object(grad: np.ndarray, regions: np.ndarray,
                      candidates: Sequence[np.ndarray], base: int,
                      margin: float = 0.0) -> np.ndarray:
    """Per labelled region, the candidate mask whose contour there has the most gradient.

    Parameters
    ----------
    grad : ndarray
        Gradient magnitude, ``(Y, X)``.
    regions : ndarray of int
        One label per object region (0: none); pixels outside every region end up off.
    candidates : sequence of bool ndarray
        Candidate object masks.
    base : int
        The candidate a region keeps when no other is better (or it has no contour).
    margin : float
        Another candidate must beat ``base``'s mean contour gradient by this fraction.

    Returns
    -------
    ndarray of bool
        The composed mask.
    """
    n = int(regions.max())
    if n == 0:
        return np.zeros(np.shape(candidates[base]), bool)
    inside = regions > 0
    scores = []
    for m in candidates:
        c = _contour(m) & inside
        ids = regions[c]  # only contour pixels: small arrays
        total = np.bincount(ids, weights=grad[c], minlength=n + 1)[1:]
        count = np.bincount(ids, minlength=n + 1)[1:]
        scores.append(np.where(count > 0, total / np.maximum(count, 1), -1.0))
    table = np.stack(scores)
    best = np.argmax(table, axis=0)
    best[table.max(axis=0) <= table[base] * (1.0 + float(margin))] = base
    choice = np.concatenate([[0], best]).astype(np.int8)[regions]  # candidate per pixel
    out = np.zeros(regions.shape, bool)
    for k, m in enumerate(candidates):
        out |= inside & (choice == k) & m
    return out


class _Thresholded(Sequence):
    """``prob > t`` for each threshold, made when asked for (one mask in memory at a time)."""

    def __init__(self, prob: np.ndarray, thresholds: Sequence[float]) -> None:
        self.prob, self.thresholds = prob, list(thresholds)

    def __len__(self) -> int:
        return len(self.thresholds)

    def __getitem__(self, k):  # noqa: ANN001, ANN204 - Sequence's int-or-slice protocol
        if isinstance(k, slice):
            return [self.prob > t for t in self.thresholds[k]]
        return self.prob > self.thresholds[k]


def regions_of(mask: np.ndarray, grow: int = GROW) -> np.ndarray:
    """One label per connected component of ``mask``, grown by ``grow`` pixels (a disk)
    into the pixels outside every component; where two grow into the same pixel, the
    higher label takes it."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask)
    if n == 0 or grow <= 0:
        return lab
    yy, xx = np.mgrid[-grow:grow + 1, -grow:grow + 1]
    grown = ndi.grey_dilation(lab, footprint=yy ** 2 + xx ** 2 <= grow ** 2)
    return np.where(lab > 0, lab, grown)


def snap(plane: np.ndarray, prob: np.ndarray, thresholds: Sequence[float] = THRESHOLDS,
         margin: float = 0.0) -> np.ndarray:
    """Object mask from the object class's probability ``prob``, snapped to the edges.

    Each connected component of ``prob > 0.5``, grown by :data:`GROW` pixels into its
    neighbourhood (not into other components; :func:`regions_of`), takes the threshold
    among ``thresholds`` whose contour there has the highest mean gradient of ``plane``.
    """
    ts = [float(t) for t in thresholds]
    if 0.5 not in ts:
        raise ValueError("thresholds must include 0.5")
    prob = np.asarray(prob, np.float32)
    return choose_per_object(gradient(plane), regions_of(prob > 0.5),
                             _Thresholded(prob, ts), ts.index(0.5), margin)


def snap_labels(plane: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Class ids 1 and 2 of a two-class ``(2, Y, X)`` probability map, snapped to edges.

    The object class is the one with fewer pixels in the plain argmax prediction (class
    2 on a tie); the other class gets every other pixel.
    """
    probs = np.asarray(probs)
    if probs.ndim != 3 or probs.shape[0] != 2:
        raise ValueError(f"expected (2, Y, X) probabilities, got {probs.shape}")
    plain = probs[1] > probs[0]
    obj = 1 if 2 * int(plain.sum()) <= plain.size else 0
    mask = snap(plane, probs[obj])
    return np.where(mask, obj + 1, 2 - obj).astype(np.uint8)
