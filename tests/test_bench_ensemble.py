"""The combination rules of bench/forest_ensemble.py and the forest's probabilities."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from forest_ensemble import combine  # noqa: E402


def _maps() -> tuple[np.ndarray, np.ndarray]:
    """Three pixels, three classes: the two models disagree in chosen ways."""
    unet = np.array([[0.6, 0.1, 0.4],
                     [0.3, 0.8, 0.35],
                     [0.1, 0.1, 0.25]], np.float32)
    forest = np.array([[0.1, 0.9, 0.0],
                       [0.85, 0.05, 0.5],
                       [0.05, 0.05, 0.5]], np.float32)
    return unet, forest


def test_single_models_are_their_argmax() -> None:
    unet, forest = _maps()
    assert combine(unet, forest, "unet").tolist() == [1, 2, 1]
    assert combine(unet, forest, "forest").tolist() == [2, 1, 2]


def test_mean_and_weights() -> None:
    unet, forest = _maps()
    # pixel 0: (0.6+0.1)/2=0.35 vs (0.3+0.85)/2=0.575 -> class 2
    assert combine(unet, forest, "mean").tolist() == [2, 1, 2]
    # a quarter of the forest keeps the U-Net's class at pixel 0 (0.475 vs 0.4375)
    assert combine(unet, forest, "mean-w25")[0] == 1
    assert combine(unet, forest, "mean-w75")[0] == 2


def test_product_is_log_sum_and_clips_zero() -> None:
    unet, forest = _maps()
    # pixel 2: the forest gives class 1 probability 0; clipped, not -inf for every class
    out = combine(unet, forest, "product")
    expect = (np.log(np.clip(unet, 1e-6, 1)) + np.log(np.clip(forest, 1e-6, 1))).argmax(0) + 1
    assert out.tolist() == expect.tolist()
    assert out[2] in (2, 3)


def test_sure_takes_the_forest_only_where_confident() -> None:
    unet, forest = _maps()
    # forest top probabilities 0.85, 0.9, 0.5: confident on pixels 0 and 1 only
    assert combine(unet, forest, "sure").tolist() == [2, 1, 1]


def test_forest_probabilities_agree_with_its_prediction() -> None:
    import realistic as rl  # its forest is scikit-learn's (in the testing extra)

    rng = np.random.default_rng(0)
    image = rng.normal(100, 5, (48, 48)).astype(np.float32)
    image[10:30, 10:30] += 40
    labels = np.zeros((48, 48), np.uint8)
    labels[15:25, 15:25] = 2
    labels[35:45, 35:45] = 1
    (pred,), _ = rl.forest([(image, labels)], [image], False, 0)
    (prob,), _ = rl.forest([(image, labels)], [image], False, 0, probabilities=3)
    assert prob.shape == (3, 48, 48)
    np.testing.assert_allclose(prob.sum(0), 1.0, atol=1e-5)
    assert not prob[2].any()  # class 3 was never painted
    np.testing.assert_array_equal(prob.argmax(0) + 1, pred)
