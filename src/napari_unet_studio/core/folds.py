"""Stroke-wise held-out splits of painted labels, and agreement on the held-out strokes.

A *stroke* is a connected piece of painted pixels of one class (8-connected, within one
plane for stacks). Splitting the painted pixels themselves into folds would put pixels
of one stroke on both sides, and their neighbours in training make the held-out pixels
nearly free to predict; so whole strokes go to folds. Used by the decoder comparison
(``worker/compare_task.py``) and ``bench/assistant.py``; pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "label_strokes",
    "StrokeSplit",
    "stroke_folds",
    "boundary_mask",
    "agreement",
]

def label_strokes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the strokes of ``labels``: 8-connected pieces of one class, per slice.

    Union-find on the painted pixels only (hook to the smaller root, then compress), so
    the cost grows with the painted pixels, not with the image or the stroke length
    (a 512 x 512 image with a 400 px stroke: 2 ms).

    Parameters
    ----------
    labels : numpy.ndarray
        ``(Y, X)`` or ``(Z, Y, X)`` integer labels, 0 = not painted.

    Returns
    -------
    strokes : numpy.ndarray
        int32, same shape: 0 where not painted, ``1..n`` the stroke of each painted pixel
        (numbered in raster order of their first pixel).
    classes : numpy.ndarray
        ``(n,)`` the class of each stroke (``classes[i - 1]`` for stroke ``i``).
    """
    lab = np.asarray(labels)
    if lab.ndim not in (2, 3):
        raise ValueError(f"labels must be 2D or 3D, got shape {lab.shape}")
    planes = lab[None] if lab.ndim == 2 else lab
    _, h, w = planes.shape
    flat = planes.reshape(-1)
    idx = np.flatnonzero(flat)
    out = np.zeros(flat.shape, np.int32)
    if idx.size == 0:
        return out.reshape(lab.shape), np.zeros(0, np.int64)
    z, rem = np.divmod(idx, h * w)
    y, x = np.divmod(rem, w)
    cls = flat[idx]
    parent = np.arange(idx.size)
    firsts, seconds = [], []
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each neighbour pair once
        ny, nx = y + dy, x + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        target = z[ok] * h * w + ny[ok] * w + nx[ok]
        pos = np.minimum(np.searchsorted(idx, target), idx.size - 1)
        hit = (idx[pos] == target) & (flat[target] == cls[ok])
        firsts.append(np.flatnonzero(ok)[hit])
        seconds.append(pos[hit])
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    while True:
        ra, rb = parent[a], parent[b]
        if np.array_equal(ra, rb):
            break
        lo = np.minimum(ra, rb)
        np.minimum.at(parent, ra, lo)
        np.minimum.at(parent, rb, lo)
        while True:  # compress: every pixel points at its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    roots, ids = np.unique(parent, return_inverse=True)
    out[idx] = ids.astype(np.int32) + 1
    return out.reshape(lab.shape), cls[roots].astype(np.int64)


@dataclass(frozen=True)
class StrokeSplit:
    """One fold: labels to train on and the held-out strokes to score on.

    Attributes
    ----------
    train : numpy.ndarray
        The labels with the held-out strokes removed (0).
    heldout : numpy.ndarray
        Only the held-out strokes (0 elsewhere).
    strokes : tuple of int
        Stroke numbers (from :func:`label_strokes`) held out in this fold.
    """

    train: np.ndarray
    heldout: np.ndarray
    strokes: tuple[int, ...]


def stroke_folds(labels: np.ndarray, n_folds: int = 2, seed: int = 0) -> list[StrokeSplit]:
    """Split the strokes of ``labels`` into ``n_folds`` folds (whole strokes only).

    The strokes of each class are shuffled (seeded) and dealt to the folds in turn,
    largest first within the shuffle order, so every fold holds out about the same
    number of strokes of each class. A class with fewer strokes than folds is held out
    in only some folds; a class with a single stroke is never held out (it is needed
    for training) and is kept in every fold's training labels.

    Raises
    ------
    ValueError
        Fewer than 2 folds, or no class with at least 2 strokes (nothing can be held out
        while every class stays painted).
    """
    if int(n_folds) < 2:
        raise ValueError("n_folds must be at least 2")
    lab = np.asarray(labels)
    strokes, classes = label_strokes(lab)
    rng = np.random.default_rng(seed)
    sizes = np.bincount(strokes.ravel(), minlength=classes.size + 1)[1:]
    fold_of = np.full(classes.size, -1, np.int64)
    start = 0
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        if members.size < 2:
            continue
        members = rng.permutation(members)
        members = members[np.argsort(-sizes[members], kind="stable")]
        # the deal starts where the previous class ended: small classes spread over folds
        for j, s in enumerate(members):
            fold_of[s] = (start + j) % int(n_folds)
        start += members.size
    if not (fold_of >= 0).any():
        raise ValueError("Paint at least two separate strokes of one class to hold one out.")
    out = []
    for f in range(int(n_folds)):
        chosen = np.flatnonzero(fold_of == f) + 1
        mask = np.isin(strokes, chosen)
        # a class whose every stroke landed in this fold would vanish from training
        for c in np.unique(classes[chosen - 1]) if chosen.size else []:
            if not ((lab == c) & ~mask).any():
                keep = chosen[classes[chosen - 1] == c][-1]
                chosen = chosen[chosen != keep]
                mask &= strokes != keep
        train = np.where(mask, 0, lab).astype(lab.dtype)
        held = np.where(mask, lab, 0).astype(lab.dtype)
        out.append(StrokeSplit(train, held, tuple(int(s) for s in chosen)))
    return out


def boundary_mask(heldout: np.ndarray, context: np.ndarray, radius: int = 6) -> np.ndarray:
    """Held-out pixels within ``radius`` px (Chebyshev, in-plane) of a painted pixel of
    another class in ``context`` (all painted labels): where the user painted both
    sides of a boundary."""
    held = np.asarray(heldout)
    ctx = np.asarray(context)
    planes_h = held[None] if held.ndim == 2 else held
    planes_c = ctx[None] if ctx.ndim == 2 else ctx
    out = np.zeros(planes_h.shape, bool)
    for z in range(planes_h.shape[0]):
        hz, cz = planes_h[z], planes_c[z]
        if not hz.any():
            continue
        for c in np.unique(hz[hz > 0]):
            other = (cz > 0) & (cz != c)
            if not other.any():
                continue
            near = _dilate(other, int(radius))
            out[z] |= (hz == c) & near
    return out.reshape(held.shape)


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square dilation by ``r`` px (separable running max via cumulative counts)."""
    m = mask.astype(np.int32)
    for axis in (0, 1):
        c = np.cumsum(m, axis=axis)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        n = m.shape[axis]
        hi = np.clip(np.arange(n) + r + 1, 0, n)
        lo = np.clip(np.arange(n) - r, 0, n)
        m = (np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis) > 0).astype(np.int32)
    return m.astype(bool)


def agreement(prediction: np.ndarray, heldout: np.ndarray,
              mask: np.ndarray | None = None, classes: Sequence[int] | None = None) -> dict:
    """How well ``prediction`` agrees with the held-out strokes.

    Returns
    -------
    dict
        ``pixels`` (held-out pixels scored), ``accuracy`` (share predicted as painted),
        ``balanced`` (mean over classes of that share; ``None`` without pixels) and
        ``per_class`` ``{class: share}``.
    """
    pred = np.asarray(prediction)
    held = np.asarray(heldout)
    sel = held > 0 if mask is None else (held > 0) & np.asarray(mask, bool)
    n = int(sel.sum())
    if n == 0:
        return {"pixels": 0, "accuracy": None, "balanced": None, "per_class": {}}
    truth, got = held[sel], pred[sel]
    per = {}
    for c in (np.unique(truth) if classes is None else classes):
        m = truth == c
        if m.any():
            per[int(c)] = float(np.mean(got[m] == c))
    return {"pixels": n, "accuracy": float(np.mean(got == truth)),
            "balanced": float(np.mean(list(per.values()))), "per_class": per}
