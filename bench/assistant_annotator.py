"""The simulated annotator of ``bench/assistant.py annotate``: where it paints, and how.

Where (:func:`pick_regions`): the next square regions to paint, by the product's
uncertainty map (``uncertainty``), uniformly among the unpainted regions (``random``) or
where the prediction is most wrong (``oracle``, uses the truth: the upper bound).

How (:class:`Annotator`), two modes:

``correct`` (the default of the benchmark)
    What a user does who looks at the prediction in the box and corrects it: a stroke
    (skeleton and long-axis line) of every class present, plus every pixel of the box
    that the prediction gets wrong painted with its true class, brushed ``width`` px
    wide; everything kept ``margin`` px (default 1) away from every class boundary. The
    error strokes go up to the true boundary, so they carry boundary information.
``inside`` (the earlier benchmark)
    Only the stroke of every class present, ``margin`` px (default 2) inside the class:
    the strokes never reach a boundary, whatever the prediction.

Painting reads only the truth, the prediction and what is already painted; it never
repaints a painted pixel.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_unet_studio.core.uncertainty import EXPLORE

__all__ = ["MODES", "Annotator", "pick_regions", "away_from_boundaries"]

MODES = ("correct", "inside")
DEFAULT_MARGIN = {"correct": 1, "inside": 2}


def away_from_boundaries(truth: np.ndarray, margin: int) -> np.ndarray:
    """Pixels more than ``margin`` px (Euclidean) from every pixel of another class.

    The image border is not a boundary. ``margin=0`` allows every pixel.
    """
    out = np.zeros(truth.shape, bool)
    for c in np.unique(truth):
        mask = truth == c
        if mask.all():
            return np.ones(truth.shape, bool)
        # padding with the class itself: the border is not a boundary
        dist = ndi.distance_transform_edt(np.pad(mask, 1, constant_values=True))[1:-1, 1:-1]
        out |= mask & (dist > margin)
    return out


class Annotator:
    """Paints a box from the truth, like a user (see the module docstring).

    Parameters
    ----------
    truth : numpy.ndarray
        (H, W) class ids (every pixel labelled, no 0).
    mode : {"correct", "inside"}
        ``correct``: class strokes plus the prediction's errors; ``inside``: class
        strokes only.
    margin : int, optional
        Painted pixels stay more than this many px from every class boundary (default
        1 for ``correct``, 2 for ``inside``).
    width : int
        Brush width (odd).
    """

    def __init__(self, truth: np.ndarray, mode: str = "correct", margin: int | None = None,
                 width: int = 3) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        self.truth = np.asarray(truth)
        self.mode = mode
        self.margin = DEFAULT_MARGIN[mode] if margin is None else int(margin)
        self.width = width
        self.allowed = away_from_boundaries(self.truth, self.margin)

    def paint(self, painted: np.ndarray, center: tuple[int, int], size: int,
              pred: np.ndarray | None = None) -> int:
        """Paint the ``size`` box around ``center`` into ``painted`` (in place).

        ``pred`` (the current prediction) is needed in ``correct`` mode. Returns the
        number of newly painted pixels.
        """
        import strokes as st
        from skimage.morphology import skeletonize

        if self.mode == "correct" and pred is None:
            raise ValueError("the correct mode paints the prediction's errors: pass pred")
        h, w = painted.shape
        y0, x0 = max(0, center[0] - size // 2), max(0, center[1] - size // 2)
        sl = (slice(y0, min(h, y0 + size)), slice(x0, min(w, x0 + size)))
        truth, allowed = self.truth[sl], self.allowed[sl]
        wrong = (np.asarray(pred)[sl] != truth) if self.mode == "correct" else None
        view = painted[sl]
        before = int(np.count_nonzero(view))
        for c in np.unique(truth):
            ok = allowed & (truth == c)
            stroke = np.zeros(ok.shape, bool)
            if ok.sum() >= 6:
                # the skeleton follows the shape; the long-axis line paints a box that
                # one class fills (whose skeleton is a point)
                stroke |= skeletonize(ok) | st._axis_line(ok)
            if wrong is not None:
                stroke |= wrong & ok
            if self.width > 1 and stroke.any():
                stroke = ndi.binary_dilation(stroke, iterations=(self.width - 1) // 2)
            stroke &= ok & (view == 0)
            view[stroke] = c
        return int(np.count_nonzero(view)) - before


def pick_regions(strategy: str, painted: np.ndarray, probs: np.ndarray, pred: np.ndarray,
                 truth: np.ndarray, size: int, count: int, rng: np.random.Generator,
                 explore: float = EXPLORE) -> list[tuple[int, int]]:
    """Centres of the ``count`` regions of ``size`` px to paint next.

    ``explore``: the uncertainty strategy's weight of the distance to the painted pixels
    (the product's default, ``uncertainty.EXPLORE``; 0: the entropy alone). The oracle
    ranks by the error alone.
    """
    from napari_unet_studio.core.uncertainty import box_mean, uncertain_regions, uncertainty_map

    if strategy == "uncertainty":
        regions = uncertain_regions(uncertainty_map(probs, "entropy"), painted, size=size,
                                    count=count, explore=explore)
        return [r.center for r in regions]
    if strategy == "oracle":
        regions = uncertain_regions((pred != truth).astype(np.float32), painted, size=size,
                                    count=count, explore=0.0)
        return [r.center for r in regions]
    free = box_mean(painted != 0, size) <= 0.02
    half = size // 2
    free[:half], free[-half:], free[:, :half], free[:, -half:] = False, False, False, False
    ys, xs = np.nonzero(free)
    out: list[tuple[int, int]] = []
    for i in rng.permutation(ys.size):
        c = (int(ys[i]), int(xs[i]))
        if all(max(abs(c[0] - o[0]), abs(c[1] - o[1])) >= size for o in out):
            out.append(c)
        if len(out) == count:
            break
    return out
