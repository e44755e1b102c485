"""User-like strokes made deterministically from a full ground truth (realistic suite).

Two kinds, both of which keep away from every class boundary (no rings that pin a
boundary, no stroke that touches one):

- :func:`gap_strokes` -- for "objects on a background" images (nuclei): a stroke inside a
  random subset of the objects (its skeleton, or a straight line along its long axis, at
  least ``inside`` px from the object's edge) and straight background lines kept at least
  ``gap`` px from every object (pieces shorter than ``min_piece`` px are dropped).
- :func:`region_strokes` -- for photos where every class is a region (background
  included): the skeleton of a random subset of the connected regions of every class,
  brushed ``width`` px wide, kept ``inside`` px inside the region.

:func:`coverage` gives the painted fraction. Everything depends only on the truth and
the seed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["gap_strokes", "region_strokes", "coverage", "thin_out"]


def coverage(strokes: np.ndarray) -> float:
    """Fraction of the pixels that are painted (non-zero)."""
    return float(np.count_nonzero(strokes) / strokes.size)


def _skeleton(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    return skeletonize(mask)


def _axis_line(mask: np.ndarray) -> np.ndarray:
    """A straight line through the centroid along the long axis, clipped to ``mask``."""
    from skimage.draw import line

    yy, xx = np.nonzero(mask)
    out = np.zeros(mask.shape, bool)
    if yy.size < 2:
        out[yy, xx] = True
        return out
    cy, cx = yy.mean(), xx.mean()
    cov = np.cov(np.stack([yy - cy, xx - cx]))
    vals, vecs = np.linalg.eigh(cov)
    dy, dx = vecs[:, int(np.argmax(vals))]
    half = 2.0 * np.sqrt(max(vals.max(), 1.0))
    h, w = mask.shape
    y0, x0 = np.clip([cy - half * dy, cx - half * dx], 0, [h - 1, w - 1])
    y1, x1 = np.clip([cy + half * dy, cx + half * dx], 0, [h - 1, w - 1])
    rr, cc = line(int(round(y0)), int(round(x0)), int(round(y1)), int(round(x1)))
    out[rr, cc] = True
    return out & mask


def _brush(stroke: np.ndarray, allowed: np.ndarray, width: int) -> np.ndarray:
    """Widen a 1-px stroke to about ``width`` px, never leaving ``allowed``."""
    if width > 1:
        stroke = ndi.binary_dilation(stroke, iterations=(width - 1) // 2)
    return stroke & allowed


def gap_strokes(
    truth: np.ndarray,
    seed: int = 0,
    background: int = 1,
    object_share: float = 0.4,
    inside: int = 1,
    gap: float = 4.0,
    bg_fraction: float = 0.006,
    width: int = 3,
    min_piece: int = 8,
    kind: str = "mixed",
) -> np.ndarray:
    """Strokes inside some objects and on the background, with a gap around every object.

    Parameters
    ----------
    truth : numpy.ndarray
        (H, W) class ids, ``background`` and object classes, every pixel labelled.
    seed : int
        Everything random (which objects, stroke kind, line positions) comes from it.
    background : int
        The background class.
    object_share : float
        Fraction of the objects (connected components of each object class) that get a
        stroke (at least one per class).
    inside : int
        Object strokes stay in the object eroded by this many pixels (at least 1 px of
        object between a stroke and the object's edge).
    gap : float
        Background strokes keep at least this Euclidean distance (px) from every object
        pixel.
    bg_fraction : float
        Background lines are added until they cover this fraction of the image (or 200
        lines were tried).
    width : int
        Brush width in pixels (odd).
    min_piece : int
        Background line pieces (between objects) shorter than this many pixels are dropped.
    kind : {"mixed", "skeleton", "line"}
        Object stroke: the skeleton of the eroded object, a straight line along its long
        axis, or one of the two at random per object.

    Returns
    -------
    numpy.ndarray
        uint8 (H, W): 0 = not painted, class ids elsewhere.
    """
    from skimage.draw import line

    rng = np.random.default_rng(seed)
    out = np.zeros(truth.shape, np.uint8)
    h, w = truth.shape
    for cls in (int(c) for c in np.unique(truth)):
        if cls == background:
            continue
        lab, n = ndi.label(truth == cls)
        if n == 0:
            continue
        boxes = ndi.find_objects(lab)
        order = rng.permutation(n)
        take = max(1, int(round(object_share * n)))
        picked = 0
        for idx in order:
            if picked >= take:
                break
            sl = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in boxes[idx])
            obj = lab[sl] == idx + 1
            # pixels at least `inside` px inside: distance to the nearest non-object > inside
            allowed = ndi.distance_transform_edt(np.pad(obj, 1))[1:-1, 1:-1] > inside
            if allowed.sum() < 3:
                continue
            use_line = kind == "line" or (kind == "mixed" and rng.random() < 0.5)
            core = _axis_line(allowed) if use_line else _skeleton(allowed)
            stroke = _brush(core, allowed, width)
            if stroke.any():
                view = out[sl]
                view[stroke] = cls
                picked += 1
    far = ndi.distance_transform_edt(truth == background) >= gap
    target = bg_fraction * truth.size
    painted = np.zeros(truth.shape, bool)
    for _ in range(200):
        if painted.sum() >= target:
            break
        y0, y1 = rng.integers(0, h, size=2)
        x0, x1 = rng.integers(0, w, size=2)
        one = np.zeros(truth.shape, bool)
        rr, cc = line(int(y0), int(x0), int(y1), int(x1))
        one[rr, cc] = True
        one &= far
        pieces, m = ndi.label(one, structure=np.ones((3, 3)))
        if m:
            sizes = ndi.sum(one, pieces, index=np.arange(1, m + 1))
            keep = np.isin(pieces, np.nonzero(sizes >= min_piece)[0] + 1)
            painted |= _brush(keep, far, width)
    out[painted & (out == 0)] = background
    return out


def region_strokes(
    truth: np.ndarray,
    seed: int = 0,
    region_share: float = 0.7,
    inside: int = 3,
    width: int = 3,
    min_area: int = 150,
) -> np.ndarray:
    """Skeleton strokes inside the regions of every class (photos, background included).

    Every connected region of at least ``min_area`` px of every class is a candidate; a
    random ``region_share`` of them (at least one per class) gets its skeleton, brushed
    ``width`` px wide and kept more than ``inside`` px inside the region.

    Returns
    -------
    numpy.ndarray
        uint8 (H, W): 0 = not painted, class ids elsewhere.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(truth.shape, np.uint8)
    for cls in (int(c) for c in np.unique(truth)):
        lab, n = ndi.label(truth == cls)
        if n == 0:
            continue
        sizes = ndi.sum(np.ones(truth.shape), lab, index=np.arange(1, n + 1))
        regions = [i + 1 for i in np.argsort(-sizes) if sizes[i] >= min_area] or [
            int(np.argmax(sizes)) + 1]
        regions = [regions[i] for i in rng.permutation(len(regions))]
        take = max(1, int(round(region_share * len(regions))))
        picked = 0
        for region in regions:
            if picked >= take:
                break
            obj = lab == region
            allowed = ndi.distance_transform_edt(np.pad(obj, 1))[1:-1, 1:-1] > inside
            if allowed.sum() < 3:  # too thin to paint inside: try the next region
                continue
            stroke = _brush(_skeleton(allowed), allowed, width)
            if stroke.any():
                out[stroke] = cls
                picked += 1
    return out


def thin_out(strokes: np.ndarray, share: float, seed: int = 0, cell: int = 32) -> np.ndarray:
    """Keep about ``share`` of the strokes: cut them into pieces, keep a random subset.

    Strokes are cut along a ``cell`` x ``cell`` pixel grid; a random ``share`` of the
    pieces of every class is kept (at least one per class). Used for "the same photo with
    a third of those strokes".
    """
    rng = np.random.default_rng(seed + 1000)
    yy, xx = np.indices(strokes.shape)
    cells = (yy // cell) * (strokes.shape[1] // cell + 1) + xx // cell
    out = np.zeros_like(strokes)
    for cls in (int(c) for c in np.unique(strokes) if c):
        mask = strokes == cls
        pieces = np.zeros(strokes.shape, np.int64)
        lab, n = ndi.label(mask, structure=np.ones((3, 3)))
        pieces[mask] = lab[mask] * (cells.max() + 1) + cells[mask]
        ids = np.unique(pieces[mask])
        keep = rng.permutation(ids)[: max(1, int(round(share * ids.size)))]
        out[mask & np.isin(pieces, keep)] = cls
    return out
