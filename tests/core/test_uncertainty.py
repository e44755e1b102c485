"""Uncertainty maps (entropy, margin, flips) and the search for unpainted regions."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet_studio.core.uncertainty import (
    box_mean,
    disagreement_map,
    entropy_map,
    exploration_weight,
    margin_map,
    predict_uncertainty,
    to_uint8,
    uncertain_regions,
    uncertainty_map,
)


def _probs(p1: np.ndarray) -> np.ndarray:
    p1 = np.asarray(p1, np.float32)
    return np.stack([1 - p1, p1])


def test_entropy_and_margin_values():
    p = _probs(np.array([[0.0, 0.5], [1.0, 0.25]]))
    h = entropy_map(p)
    assert h.dtype == np.float32 and h.shape == (2, 2)
    assert h[0, 0] == pytest.approx(0, abs=1e-5) and h[1, 0] == pytest.approx(0, abs=1e-5)
    assert h[0, 1] == pytest.approx(1.0, abs=1e-5)  # a tie: maximal
    ent = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75)) / np.log(2)
    assert h[1, 1] == pytest.approx(ent, abs=1e-5)
    m = margin_map(p)
    assert m[0, 1] == pytest.approx(1.0) and m[0, 0] == pytest.approx(0.0)
    assert m[1, 1] == pytest.approx(1 - 0.5)
    # three classes: uniform is maximal, normalised by log K
    p3 = np.full((3, 4, 4), 1 / 3, np.float32)
    assert np.allclose(entropy_map(p3), 1.0, atol=1e-5)
    assert np.allclose(margin_map(p3), 1.0, atol=1e-5)


def test_flip_disagreement():
    a = _probs(np.zeros((3, 3)))
    b = _probs(np.ones((3, 3)))
    assert np.allclose(disagreement_map([a, a]), 0)
    assert np.allclose(disagreement_map([a, b]), 0.5)  # each is 0.5 away from the mean
    confident_but_disagree = uncertainty_map([a, b], "flips")
    assert np.allclose(confident_but_disagree, 1.0)  # the mean is a tie, plus disagreement
    assert np.allclose(uncertainty_map([a, a], "flips"), 0, atol=1e-5)
    with pytest.raises(ValueError):
        uncertainty_map(a, "bogus")


def test_to_uint8():
    u = to_uint8(np.array([0.0, 0.5, 1.0, 2.0, np.nan]))
    assert u.dtype == np.uint8 and list(u) == [0, 128, 255, 255, 0]


def test_box_mean_matches_brute_force():
    rng = np.random.default_rng(0)
    v = rng.random((13, 17))
    got = box_mean(v, 4)
    for y, x in [(0, 0), (6, 8), (12, 16), (3, 15)]:
        ys, xs = slice(max(0, y - 2), y + 2), slice(max(0, x - 2), x + 2)
        assert got[y, x] == pytest.approx(v[ys, xs].mean(), rel=1e-5)


def test_regions_rank_and_skip_painted():
    u = np.zeros((100, 100), np.float32)
    u[10:20, 10:20] = 1.0   # the most uncertain spot
    u[60:70, 60:70] = 0.8   # the second
    u[20:30, 70:80] = 0.5   # the third
    regions = uncertain_regions(u, size=10, count=5)
    assert [r.center for r in regions[:3]] == [(15, 15), (65, 65), (25, 75)]
    assert regions[0].score == pytest.approx(1.0)
    assert all(r.score > 0 for r in regions)
    painted = np.zeros(u.shape, np.uint8)
    painted[14, 12:18] = 1  # the user painted in the best spot
    after = uncertain_regions(u, painted, size=10, count=5)
    assert after[0].center == (65, 65)
    assert all(not painted[r.box(u.shape)].any() for r in after)  # none holds a stroke
    assert (15, 15) not in [r.center for r in after]
    # already shown regions are avoided (the Next button cycles)
    nxt = uncertain_regions(u, painted, size=10, count=3, avoid=[(65, 65)])
    assert nxt and all(max(abs(r.center[0] - 65), abs(r.center[1] - 65)) >= 10 for r in nxt)
    assert (25, 75) in [r.center for r in nxt]
    assert uncertain_regions(np.zeros((50, 50)), size=10) == []


def test_exploration_weight_grows_with_the_distance_to_the_strokes():
    painted = np.zeros((20, 200), np.uint8)
    assert np.all(exploration_weight(painted, 10, 2.0) == 3.0)  # nothing painted: uniform
    painted[:, 0] = 1
    w = exploration_weight(painted, 10, explore=2.0, distance=4.0)  # full weight at 40 px
    assert w[5, 0] == pytest.approx(1.0)
    assert w[5, 20] == pytest.approx(2.0)  # half-way: 1 + 2 * 20 / 40
    assert np.all(w[:, 40:] == pytest.approx(3.0))
    assert np.all(np.diff(w[5]) >= 0)
    assert np.all(exploration_weight(painted, 10, explore=0.0) == 1.0)


def test_regions_explore_where_the_map_is_flat_keep_peaks_where_it_is_not():
    # a weak model: the same uncertainty everywhere; strokes on the left third
    u = np.full((60, 300), 0.1, np.float32)
    painted = np.zeros(u.shape, np.uint8)
    painted[10:50, 10:90] = 1
    alone = uncertain_regions(u, painted, size=20, count=3, explore=0.0)
    spread = uncertain_regions(u, painted, size=20, count=3)
    assert min(r.center[1] for r in alone) < 150  # ties: the first unpainted box wins
    assert all(r.center[1] >= 170 for r in spread)  # 4 sides (80 px) or more from the strokes
    assert all(r.score == pytest.approx(0.1) for r in spread)  # score: uncertainty alone
    # a peaked map: the most uncertain spot stays first even next to the strokes
    u[20:40, 100:120] = 0.9
    assert uncertain_regions(u, painted, size=20, count=1)[0].center == (30, 110)


def test_large_planes_are_searched_on_block_means():
    u = np.zeros((3000, 2100), np.float32)  # 3x3 blocks: SEARCH_SIDE is 1024
    u[1450:1550, 650:750] = 1.0
    u[300:400, 1800:1900] = 0.6
    first, second = uncertain_regions(u, size=90, count=2, explore=0.0)
    assert first.size == 90 and first.score == pytest.approx(1.0, abs=0.05)
    assert abs(first.center[0] - 1500) <= 6 and abs(first.center[1] - 700) <= 6  # 2 blocks
    assert abs(second.center[0] - 350) <= 6 and abs(second.center[1] - 1850) <= 6
    painted = np.zeros(u.shape, np.uint8)
    painted[1490:1510, 660:740] = 1  # 16 % of the best box
    after = uncertain_regions(u, painted, size=90, count=1)
    assert abs(after[0].center[0] - 350) <= 6
    assert uncertain_regions(u, size=90, count=1, avoid=[first.center],
                             explore=0.0)[0].center == second.center


def test_regions_in_a_stack_only_known_planes():
    u = np.zeros((4, 40, 40), np.uint8)
    u[1, 5:15, 5:15] = 200
    u[3, 20:30, 20:30] = 255
    regions = uncertain_regions(u, size=10, count=2)
    assert regions[0].center == (3, 25, 25) and regions[1].center == (1, 10, 10)
    assert regions[0].score == pytest.approx(1.0)
    only = uncertain_regions(u, size=10, count=2, valid=np.array([True, True, False, False]))
    assert [r.center for r in only] == [(1, 10, 10)]
    box = regions[0].box(u.shape)
    assert u[box].shape == (1, 10, 10)


def test_predict_uncertainty_from_a_model():
    from napari_unet_studio._api import train

    rng = np.random.default_rng(0)
    image = rng.normal(0, 0.1, (48, 48)).astype(np.float32)
    image[:, 24:] += 1.0
    labels = np.zeros((48, 48), np.uint8)
    labels[5:40, 3:8], labels[5:40, 40:45] = 1, 2
    model = train(image, labels, steps=15, arch={"depth": 2, "width": 4}, start="scratch",
                  patch_size=32, batch_size=2, device="cpu", threads=1)
    for method in ("entropy", "margin", "flips"):
        lab, unc = predict_uncertainty(model, image, method=method, device="cpu", threads=1)
        assert lab.shape == unc.shape == image.shape and unc.dtype == np.float32
        assert 0 <= unc.min() and unc.max() <= 1
    # entropy from the API equals the entropy of the probabilities it predicts
    from napari_unet_studio._api import predict

    _, probs = predict(model, image, probabilities=True, device="cpu", threads=1)
    _, unc = predict_uncertainty(model, image, method="entropy", device="cpu", threads=1)
    assert np.allclose(unc, entropy_map(probs), atol=1e-6)
