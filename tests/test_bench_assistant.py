"""The simulated annotator of bench/assistant.py (bench/assistant_annotator.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from assistant_annotator import Annotator, away_from_boundaries, pick_regions  # noqa: E402


def _disks() -> np.ndarray:
    """Background 1 with three disks of class 2 and one square of class 3."""
    yy, xx = np.indices((96, 96))
    truth = np.ones((96, 96), np.uint8)
    for cy, cx, r in ((24, 24, 10), (30, 62, 12), (70, 30, 9)):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2
    truth[58:84, 56:84] = 3
    return truth


def _boundary_distance(truth: np.ndarray) -> np.ndarray:
    """Per pixel: the distance to the nearest pixel of another class."""
    out = np.full(truth.shape, np.inf)
    for c in np.unique(truth):
        mask = truth == c
        out[mask] = ndi.distance_transform_edt(mask)[mask]
    return out


def _shrunk(truth: np.ndarray, by: int) -> np.ndarray:
    """A prediction whose objects are ``by`` px too small (the errors at the boundary)."""
    pred = truth.copy()
    objects = truth != 1
    pred[objects & ~ndi.binary_erosion(objects, iterations=by)] = 1
    return pred


def test_away_from_boundaries_keeps_the_margin():
    truth = _disks()
    dist = _boundary_distance(truth)
    for margin in (0, 1, 2):
        allowed = away_from_boundaries(truth, margin)
        np.testing.assert_array_equal(allowed, dist > margin)


def test_the_image_border_is_not_a_boundary():
    truth = np.ones((20, 20), np.uint8)
    truth[:, 10:] = 2
    allowed = away_from_boundaries(truth, 1)
    assert allowed[0, 0] and allowed[19, 19] and not allowed[5, 9] and not allowed[5, 10]
    assert away_from_boundaries(np.ones((5, 5), np.uint8), 3).all()


@pytest.mark.parametrize("margin", [1, 2])
def test_correct_paints_only_the_truth_and_reaches_the_boundary(margin):
    truth = _disks()
    pred = _shrunk(truth, 4)  # a rim of 4 px wrong around every object
    annotator = Annotator(truth, "correct", margin=margin)
    painted = np.zeros_like(truth)
    center = (30, 62)  # the second disk, box 48 px: it holds the whole disk
    added = annotator.paint(painted, center, 48, pred)
    m = painted > 0
    assert added == int(m.sum()) > 0
    # only the truth class, never within `margin` px of another class
    np.testing.assert_array_equal(painted[m], truth[m])
    dist = _boundary_distance(truth)
    assert dist[m].min() > margin
    # it reaches the boundary: painted pixels of both classes within 1 px of the margin
    for c in (1, 2):
        assert dist[m & (truth == c)].min() <= margin + 1
    # every wrong pixel of the box that is allowed is painted (the error is corrected)
    box = np.zeros(truth.shape, bool)
    box[6:54, 38:86] = True
    must = box & (pred != truth) & (dist > margin)
    assert must.any() and m[must].all()
    # nothing outside the box
    assert not m[~box].any()


def test_inside_never_reaches_the_boundary_and_ignores_the_prediction():
    truth = _disks()
    painted = np.zeros_like(truth)
    annotator = Annotator(truth, "inside")
    annotator.paint(painted, (30, 62), 48, _shrunk(truth, 4))
    m = painted > 0
    np.testing.assert_array_equal(painted[m], truth[m])
    assert _boundary_distance(truth)[m].min() > 2
    again = np.zeros_like(truth)
    annotator.paint(again, (30, 62), 48, None)  # the same without a prediction
    np.testing.assert_array_equal(again, painted)


def test_correct_carries_more_boundary_than_inside():
    truth = _disks()
    pred = _shrunk(truth, 4)
    near = _boundary_distance(truth) <= 2  # where the inside mode (margin 2) never paints
    counts = {}
    for mode in ("correct", "inside"):
        painted = np.zeros_like(truth)
        Annotator(truth, mode).paint(painted, (30, 62), 48, pred)
        counts[mode] = int(((painted > 0) & near).sum())
    assert counts["inside"] == 0 < counts["correct"]


def test_painting_never_overwrites_and_needs_a_prediction():
    truth = _disks()
    painted = np.zeros_like(truth)
    painted[20:40, 50:70] = 3  # a wrong earlier stroke: kept as it is
    before = painted.copy()
    annotator = Annotator(truth, "correct")
    annotator.paint(painted, (30, 62), 48, _shrunk(truth, 4))
    np.testing.assert_array_equal(painted[before > 0], before[before > 0])
    with pytest.raises(ValueError, match="pred"):
        annotator.paint(painted, (30, 62), 48, None)
    with pytest.raises(ValueError, match="mode"):
        Annotator(truth, "fill")


def test_oracle_and_random_regions():
    truth = _disks()
    pred = truth.copy()
    pred[60:80, 60:80] = 1  # the only error: inside the square
    painted = np.zeros_like(truth)
    probs = np.full((3, *truth.shape), 1 / 3, np.float32)
    rng = np.random.default_rng(0)
    (c,) = pick_regions("oracle", painted, probs, pred, truth, 24, 1, rng)
    assert 60 <= c[0] < 80 and 60 <= c[1] < 80
    painted[:, :48] = 1
    for c in pick_regions("random", painted, probs, pred, truth, 24, 3, rng):
        assert c[1] >= 48 + 12  # the box around it is unpainted
