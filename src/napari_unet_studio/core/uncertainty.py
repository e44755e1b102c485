"""Per-pixel uncertainty of a prediction, and where to paint next.

The maps are computed from class probabilities ``(K, *spatial)`` (what
:func:`~napari_unet_studio.core.infer.iter_predict` returns with ``probabilities=True``):

``entropy``
    Shannon entropy of the class probabilities divided by ``log K``: 0 where one class
    has all the probability, 1 where all classes are equally likely.
``margin``
    ``1 - (p_first - p_second)``: 1 where the two most likely classes tie.
``flips``
    The image is also predicted mirrored left-right and top-bottom; the map is the
    entropy of the averaged probabilities plus the mean total-variation distance of
    the three predictions from their average (their *disagreement*), clipped to 1.
    Three predictions instead of one: about 3x the cost.

:func:`uncertain_regions` turns a map into a ranked list of square regions the user
has not painted (for the "Next uncertain region" button and the simulated annotator of
``bench/assistant.py``). This module imports only numpy at import time (the napari
process uses the region search); :func:`predict_uncertainty` imports torch lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "METHODS",
    "entropy_map",
    "margin_map",
    "disagreement_map",
    "uncertainty_map",
    "to_uint8",
    "Region",
    "box_mean",
    "uncertain_regions",
    "exploration_weight",
    "predict_uncertainty",
    "EXPLORE",
    "EXPLORE_DISTANCE",
    "SEARCH_SIDE",
]

METHODS = ("entropy", "margin", "flips")
_EPS = 1e-7
#: Weight of the distance to the painted pixels in :func:`uncertain_regions` (0: off).
EXPLORE = 2.0
#: Distance, in region sides, at which that weight is reached in full.
EXPLORE_DISTANCE = 4.0
#: Planes with a longer side are searched on block means of at most this side.
SEARCH_SIDE = 1024


def _check(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float32)
    if p.ndim < 3:
        raise ValueError(f"probabilities must be (K, Y, X[, ...]); got shape {p.shape}")
    return p


def entropy_map(probs: np.ndarray) -> np.ndarray:
    """Normalised entropy in [0, 1] of ``(K, *spatial)`` probabilities (float32)."""
    p = _check(probs)
    k = p.shape[0]
    if k < 2:
        return np.zeros(p.shape[1:], np.float32)
    q = np.clip(p, _EPS, 1.0)
    h = -(q * np.log(q)).sum(axis=0) / np.float32(np.log(k))
    return np.clip(h, 0.0, 1.0).astype(np.float32)


def margin_map(probs: np.ndarray) -> np.ndarray:
    """``1 - (p_first - p_second)`` in [0, 1] (float32)."""
    p = _check(probs)
    if p.shape[0] < 2:
        return np.zeros(p.shape[1:], np.float32)
    top2 = np.partition(p, p.shape[0] - 2, axis=0)[-2:]
    return np.clip(1.0 - (top2[1] - top2[0]), 0.0, 1.0).astype(np.float32)


def disagreement_map(prob_list: Sequence[np.ndarray]) -> np.ndarray:
    """Mean total-variation distance of several predictions from their average, in [0, 1].

    ``prob_list`` holds ``(K, *spatial)`` probabilities of the same pixels (e.g. under
    flips, or from recent snapshots of a model).
    """
    stack = np.stack([_check(p) for p in prob_list])
    mean = stack.mean(axis=0)
    tv = 0.5 * np.abs(stack - mean[None]).sum(axis=1)  # (n, *spatial)
    return np.clip(tv.mean(axis=0), 0.0, 1.0).astype(np.float32)


def uncertainty_map(probs: np.ndarray | Sequence[np.ndarray],
                    method: str = "entropy") -> np.ndarray:
    """The uncertainty map of ``method`` (see the module docstring), float32 in [0, 1].

    ``probs`` is one ``(K, *spatial)`` array, or for ``"flips"`` a sequence of them (the
    predictions to compare; one array gives its entropy).
    """
    if method not in METHODS:
        raise ValueError(f"unknown uncertainty method {method!r}; use one of {METHODS}")
    if method == "flips":
        many = [probs] if isinstance(probs, np.ndarray) else list(probs)
        mean = np.mean(np.stack([_check(p) for p in many]), axis=0)
        out = entropy_map(mean)
        if len(many) > 1:
            out = np.clip(out + disagreement_map(many), 0.0, 1.0)
        return out.astype(np.float32)
    if not isinstance(probs, np.ndarray):
        raise ValueError(f"method {method!r} takes one probability array")
    return entropy_map(probs) if method == "entropy" else margin_map(probs)


def to_uint8(uncertainty: np.ndarray) -> np.ndarray:
    """Quantise a [0, 1] map to uint8 0..255 (what the live preview sends: 4x smaller)."""
    u = np.nan_to_num(np.asarray(uncertainty, dtype=np.float32), nan=0.0)
    return np.round(np.clip(u, 0.0, 1.0) * 255.0).astype(np.uint8)


# ----------------------------------------------------------------------- regions
@dataclass(frozen=True)
class Region:
    """A square region to look at: ``center`` in pixels (``(y, x)`` or ``(z, y, x)``),
    its side ``size`` in pixels and ``score`` (mean uncertainty inside it)."""

    center: tuple[int, ...]
    size: int
    score: float

    def box(self, shape: Sequence[int]) -> tuple[slice, ...]:
        """The region's pixels in an array of ``shape`` (clipped; the plane in 3D)."""
        half = self.size // 2
        lead = tuple(slice(c, c + 1) for c in self.center[:-2])
        yx = tuple(slice(max(0, c - half), min(int(n), c - half + self.size))
                   for c, n in zip(self.center[-2:], tuple(shape)[-2:]))
        return lead + yx


def box_mean(values: np.ndarray, size: int) -> np.ndarray:
    """Mean of ``values`` (2D) over the ``size x size`` box centred on each pixel.

    Integral image; boxes are clipped at the border (the mean is over the pixels inside).
    """
    v = np.asarray(values, dtype=np.float64)
    h, w = v.shape
    ii = np.zeros((h + 1, w + 1))
    ii[1:, 1:] = v.cumsum(0).cumsum(1)
    half = size // 2
    y0 = np.clip(np.arange(h) - half, 0, h)
    y1 = np.clip(np.arange(h) - half + size, 0, h)
    x0 = np.clip(np.arange(w) - half, 0, w)
    x1 = np.clip(np.arange(w) - half + size, 0, w)
    total = ii[y1][:, x1] - ii[y0][:, x1] - ii[y1][:, x0] + ii[y0][:, x0]
    area = np.outer(y1 - y0, x1 - x0)
    return (total / np.maximum(area, 1)).astype(np.float32)


def exploration_weight(painted: np.ndarray, size: int, explore: float = EXPLORE,
                       distance: float = EXPLORE_DISTANCE) -> np.ndarray:
    """``1 + explore * min(1, d / (distance * size))`` per pixel (float32).

    ``d`` is each pixel's distance in pixels to the nearest painted (non-zero) pixel of
    ``painted`` (2D or 3D); with nothing painted the weight is ``1 + explore`` everywhere.
    """
    paint = np.asarray(painted) != 0
    if explore <= 0 or not paint.any():
        return np.full(paint.shape, 1.0 + max(0.0, float(explore)), np.float32)
    from scipy import ndimage  # a napari and scikit-image dependency; lazy: numpy-only import

    d = ndimage.distance_transform_edt(~paint).astype(np.float32)
    reach = max(1e-6, float(distance) * float(size))
    return (1.0 + float(explore) * np.minimum(1.0, d / reach)).astype(np.float32)


def uncertain_regions(
    uncertainty: np.ndarray,
    painted: np.ndarray | None = None,
    *,
    size: int = 32,
    count: int = 10,
    max_painted: float = 0.02,
    valid: np.ndarray | None = None,
    avoid: Sequence[Sequence[int]] = (),
    explore: float = EXPLORE,
) -> list[Region]:
    """The most uncertain square regions the user has not painted, best first.

    Regions are ranked by their mean of ``uncertainty * exploration_weight(painted)``:
    a pixel's uncertainty counts up to ``1 + explore`` times (3x by default) when it is
    at least ``EXPLORE_DISTANCE`` region sides from every painted pixel. Where the
    uncertainty is peaked (a model that knows where it is unsure) the top regions stay
    those of the uncertainty alone; where it is flat (a weak model that is confidently
    wrong away from the strokes, e.g. a multi-class photo early on) the suggestions
    spread over the parts nobody painted yet. ``explore=0``: the uncertainty alone.
    Planes with a side over ``SEARCH_SIDE`` px are searched on the means of ``f x f``
    blocks, ``f = ceil(side / SEARCH_SIDE)`` (a 4096 px plane in well under a second
    instead of several): centres are then placed to ``f`` px.

    Parameters
    ----------
    uncertainty : numpy.ndarray
        ``(Y, X)`` or ``(Z, Y, X)`` map (any scale; uint8 or float).
    painted : numpy.ndarray, optional
        Labels of the same shape (non-zero = painted). A region in which more than
        ``max_painted`` of the pixels are painted is skipped.
    size : int
        Side of the regions in pixels (per plane in 3D).
    count : int
        At most this many regions.
    max_painted : float
        Largest painted fraction of a region that still counts as "not painted".
    valid : numpy.ndarray of bool, optional
        ``(Z,)`` for stacks: planes whose map is known (planes never previewed are skipped).
    avoid : sequence of centres
        Regions already shown: no region within ``size`` px (same plane) of one is returned.
    explore : float
        Weight of the distance to the painted pixels (see above); needs ``painted``.

    Returns
    -------
    list of Region
        Non-overlapping (centres at least ``size`` px apart in a plane), best first;
        ``score`` is the region's mean uncertainty (without the exploration weight);
        regions with zero uncertainty are left out.
    """
    u = np.asarray(uncertainty, dtype=np.float32)
    if u.ndim not in (2, 3):
        raise ValueError(f"uncertainty must be 2D or 3D, got shape {u.shape}")
    planes = u[None] if u.ndim == 2 else u
    paint = None
    if painted is not None:
        paint = np.asarray(painted) != 0
        if paint.shape != u.shape:
            raise ValueError(f"painted has shape {paint.shape}, uncertainty {u.shape}")
        paint = paint[None] if u.ndim == 2 else paint
    full_size = max(2, min(int(size), *planes.shape[1:]))
    # large planes are searched on block means (the GUI runs this on a click)
    f = max(1, -(-max(planes.shape[1:]) // SEARCH_SIDE))
    if f > 1:
        planes = _block_mean(planes, f)
        paint = None if paint is None else _block_mean(paint, f)  # painted fraction
    size = max(2, min(round(full_size / f), *planes.shape[1:]))
    weight = None
    if paint is not None and explore > 0 and paint.any():
        weight = exploration_weight(paint, size, explore)
    candidates: list[tuple[float, float, int, int, int]] = []
    per_plane = max(1, int(count))
    for z, plane in enumerate(planes):
        if valid is not None and not bool(valid[z]):
            continue
        mean_u = box_mean(plane, size)
        score = mean_u.copy() if weight is None else box_mean(plane * weight[z], size)
        half = size // 2  # whole boxes only: centres at least half a box from the border
        score[:half], score[score.shape[0] - (size - half) + 1:] = -1.0, -1.0
        score[:, :half], score[:, score.shape[1] - (size - half) + 1:] = -1.0, -1.0
        if paint is not None:
            score[box_mean(paint[z], size) > max_painted] = -1.0
        for cy, cx in (tuple(c[-2:]) for c in avoid if len(c) == u.ndim and
                       (u.ndim == 2 or int(c[0]) == z)):
            cy, cx = int(cy) // f, int(cx) // f
            score[max(0, cy - size):cy + size, max(0, cx - size):cx + size] = -1
        for _ in range(per_plane):  # greedy non-maximum suppression in this plane
            i = int(np.argmax(score))
            y, x = divmod(i, score.shape[1])
            s = float(score[y, x])
            if s <= 0.0:
                break
            candidates.append((s, float(mean_u[y, x]), z, y, x))
            score[max(0, y - size + 1):y + size, max(0, x - size + 1):x + size] = -1.0
    candidates.sort(key=lambda c: -c[0])
    scale = 255.0 if np.asarray(uncertainty).dtype == np.uint8 else 1.0
    out = []
    for _, mean, z, y, x in candidates[: int(count)]:
        yx = (min(y * f + f // 2, u.shape[-2] - 1), min(x * f + f // 2, u.shape[-1] - 1))
        center = yx if u.ndim == 2 else (z, *yx)
        out.append(Region(tuple(int(c) for c in center), full_size, mean / scale))
    return out


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Means of ``f x f`` blocks of the last two axes of ``(Z, Y, X)`` (edge blocks: of the
    pixels inside), float32."""
    z, h, w = a.shape
    hh, ww = -(-h // f) * f, -(-w // f) * f
    pad = np.zeros((z, hh, ww), np.float32)
    pad[:, :h, :w] = a
    count = np.zeros((hh, ww), np.float32)
    count[:h, :w] = 1.0
    total = pad.reshape(z, hh // f, f, ww // f, f).sum(axis=(2, 4))
    return total / count.reshape(hh // f, f, ww // f, f).sum(axis=(1, 3))


# ----------------------------------------------------------------------- from a model
def predict_uncertainty(
    model: Any,
    image: Any,
    *,
    method: str = "entropy",
    tile: Any = None,
    device: str = "auto",
    slices: Any = None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict ``image`` with ``model`` and return ``(labels, uncertainty)``.

    ``uncertainty`` is float32 in [0, 1] with the spatial shape of ``labels``. With
    ``"flips"`` the image is also predicted mirrored along X and along Y (the labels
    come from the averaged probabilities).
    """
    from .infer import predict_image

    if method not in METHODS:
        raise ValueError(f"unknown uncertainty method {method!r}; use one of {METHODS}")
    in_ch = int(model.config.in_channels)
    arr = image if method != "flips" else np.asarray(image)
    base = predict_image(model, arr, tile=tile, probabilities=True, device=device,
                         slices=slices, threads=threads)
    probs = [base.probabilities]
    if method == "flips":
        # spatial axes of the image: the last two, or the two before channels
        ax_y, ax_x = (-3, -2) if (in_ch > 1 or (arr.ndim == 3 and arr.shape[-1] == 1)) else (-2, -1)
        for axis in (ax_x, ax_y):
            res = predict_image(model, np.flip(arr, axis=axis), tile=tile, probabilities=True,
                                device=device, slices=slices, threads=threads)
            probs.append(np.flip(res.probabilities, axis=-1 if axis == ax_x else -2))
        mean = np.mean(np.stack(probs), axis=0)
        labels = (np.argmax(mean, axis=0) + 1).astype(base.labels.dtype)
        return labels, uncertainty_map(probs, "flips")
    return base.labels, uncertainty_map(probs[0], method)
