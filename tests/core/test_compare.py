"""The decoder comparison's held-out cross-entropy (core/compare.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_unet_studio.core.compare import EPS, balanced_mean, nll_table, pick_best


def _probs() -> np.ndarray:
    """3 classes on a 2 x 3 image; every pixel's channels differ (a shifted channel
    would give another number)."""
    p = np.array([[[0.7, 0.2, 0.1], [0.5, 0.0, 0.3]],
                  [[0.2, 0.5, 0.6], [0.25, 0.9, 0.3]],
                  [[0.1, 0.3, 0.3], [0.25, 0.1, 0.4]]], np.float32)
    assert np.allclose(p.sum(0), 1)
    return p


def test_nll_by_hand():
    held = np.array([[1, 2, 0], [1, 1, 3]], np.uint8)
    table = nll_table(_probs(), held)
    # label k is channel k - 1; the p = 0 pixel is clipped to EPS
    assert table[1][1] == 3 and table[1][0] == pytest.approx(
        -math.log(0.7) - math.log(0.5) - math.log(EPS))
    assert table[2] == [pytest.approx(-math.log(0.5)), 1]
    assert table[3] == [pytest.approx(-math.log(0.4)), 1]
    # class-balanced: every class counts once, whatever its pixel count
    expected = np.mean([(-math.log(0.7) - math.log(0.5) - math.log(EPS)) / 3,
                        -math.log(0.5), -math.log(0.4)])
    assert balanced_mean(table) == pytest.approx(expected)


def test_nll_mask_and_folds_add_up():
    held = np.array([[1, 2, 0], [1, 1, 3]], np.uint8)
    mask = np.array([[True, False, True], [False, False, True]])
    table = nll_table(_probs(), held, mask)
    assert table == {1: [pytest.approx(-math.log(0.7)), 1], 3: [pytest.approx(-math.log(0.4)), 1]}
    nll_table(_probs(), np.array([[0, 2, 0], [0, 0, 0]], np.uint8), None, table)  # a 2nd fold
    assert table[2] == [pytest.approx(-math.log(0.5)), 1] and table[1][1] == 1
    assert balanced_mean({}) is None
    assert nll_table(_probs(), np.zeros((2, 3), np.uint8)) == {}
    with pytest.raises(ValueError):
        nll_table(_probs(), np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError):
        nll_table(_probs(), np.full((2, 3), 4, np.uint8))


def test_nll_matches_torch_cross_entropy():
    """Against torch's cross-entropy, class by class, on random logits (2D and a stack)."""
    import torch

    rng = np.random.default_rng(3)
    for shape in ((17, 23), (3, 9, 11)):
        logits = torch.from_numpy(rng.normal(0, 3, (4, *shape)).astype(np.float32))
        probs = torch.softmax(logits, 0).numpy()
        held = rng.integers(0, 5, shape).astype(np.uint8)
        got = balanced_mean(nll_table(probs, held))
        flat = logits.reshape(4, -1).T
        target = torch.from_numpy(held.reshape(-1).astype(np.int64))
        per = [torch.nn.functional.cross_entropy(flat[target == c], target[target == c] - 1)
               for c in range(1, 5)]
        assert got == pytest.approx(float(torch.stack(per).mean()), rel=1e-4)


def test_pick_best_by_cross_entropy_then_agreement():
    sure = {"decoder": "a", "heldout": 0.99, "heldout_nll": 0.05, "parameters": 10}
    unsure = {"decoder": "b", "heldout": 1.0, "heldout_nll": 0.4, "parameters": 5}
    assert pick_best([unsure, sure]) == "a"  # the lower cross-entropy wins
    old = [{"decoder": "c", "heldout": 0.9, "parameters": 5},  # rows without the score
           {"decoder": "d", "heldout": 0.8, "parameters": 5}]
    assert pick_best(old) == "c"
    assert pick_best([*old, unsure]) == "b"  # a row that has it beats one that has not
    tie = {**sure, "decoder": "e", "heldout": 1.0}
    assert pick_best([sure, tie]) == "e"  # equal cross-entropy: agreement decides


def test_evaluate_decoder_reports_cross_entropy(two_halves_task):
    from napari_unet_studio.core.compare import evaluate_decoder

    image, lab, mc, tc = two_halves_task
    row, _ = evaluate_decoder([(image, lab)], "bilinear", model_config=mc, train_config=tc,
                              threads=1, final=False)
    # an easy image: right on the held-out strokes and more sure than a coin toss
    assert row["heldout"] > 0.9 and 0 <= row["heldout_nll"] < math.log(2)
    assert row["boundary_nll"] is None and row["boundary_pixels"] == 0


def test_undecided_only_when_every_decoder_gets_the_held_out_strokes_right():
    from napari_unet_studio.core.compare import SATURATED, undecided

    right = {"decoder": "a", "heldout": 1.0, "boundary": None, "heldout_nll": 0.02}
    also = {**right, "decoder": "b", "heldout": SATURATED, "boundary": 1.0}
    message = undecided([right, also])
    assert message is not None and "paint both sides" in message
    wrong = {**right, "decoder": "c", "heldout": SATURATED - 0.01}
    assert undecided([right, wrong]) is None  # one decoder misses held-out pixels
    edge = {**also, "decoder": "d", "boundary": 0.5}
    assert undecided([right, edge]) is None  # the boundary pixels separate them
    cancelled = {**wrong, "cancelled": True}
    assert undecided([right, also, cancelled]) is not None  # cancelled rows do not count
    assert undecided([right]) is None  # nothing to compare
