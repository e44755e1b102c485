"""Stroke-wise folds: whole strokes only, every stroke held out once; scoring; compare."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet_studio.core.folds import agreement, boundary_mask, label_strokes, stroke_folds


def _strokes() -> np.ndarray:
    lab = np.zeros((60, 60), np.uint8)
    lab[5, 5:25] = 1          # class 1: three strokes
    lab[20:23, 30:50] = 1
    lab[40, 2:10] = 1
    lab[50:55, 50:52] = 2     # class 2: two strokes
    lab[10, 40:58] = 2
    lab[30:33, 5:8] = 3       # class 3: one stroke (never held out)
    return lab


def test_label_strokes_components():
    lab = _strokes()
    lab[6, 25] = 1  # a diagonal neighbour joins the first stroke (8-connected)
    strokes, classes = label_strokes(lab)
    assert list(classes) == [1, 2, 1, 3, 1, 2]  # raster order of first pixels
    assert strokes.max() == 6 and (strokes > 0).sum() == (lab > 0).sum()
    assert len(np.unique(strokes[5, 5:25])) == 1 and strokes[6, 25] == strokes[5, 5]
    # two touching strokes of different classes stay apart
    two = np.zeros((5, 5), np.uint8)
    two[2, :3], two[2, 3:] = 1, 2
    assert list(label_strokes(two)[1]) == [1, 2]
    # stacks: per slice
    stack = np.stack([lab, lab])
    s3, c3 = label_strokes(stack)
    assert c3.size == 12 and not set(np.unique(s3[0])[1:]) & set(np.unique(s3[1])[1:])


def test_label_strokes_agrees_with_scipy():
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(1)
    lab = (rng.random((70, 80)) < 0.3) * rng.integers(1, 4, (70, 80))
    strokes, classes = label_strokes(lab)
    n = 0
    for c in (1, 2, 3):
        comp, m = ndi.label(lab == c, structure=np.ones((3, 3)))
        n += m
        for i in range(1, m + 1):
            ids = np.unique(strokes[comp == i])
            assert ids.size == 1 and classes[ids[0] - 1] == c
    assert classes.size == n


@pytest.mark.parametrize("n_folds", [2, 3])
def test_folds_hold_out_whole_strokes_once(n_folds):
    lab = _strokes()
    strokes, classes = label_strokes(lab)
    folds = stroke_folds(lab, n_folds, seed=3)
    assert len(folds) == n_folds
    held_count = np.zeros(classes.size + 1, int)
    for f in folds:
        assert not ((f.train > 0) & (f.heldout > 0)).any()
        assert np.array_equal(np.where(f.heldout > 0, f.heldout, f.train), lab)
        for s in np.unique(strokes[f.heldout > 0]):
            # never pixels of one stroke on both sides
            assert (f.heldout[strokes == s] > 0).all() and not (f.train[strokes == s] > 0).any()
            held_count[s] += 1
        for c in (1, 2, 3):  # every class keeps training pixels
            assert (f.train == c).any()
    single = int(np.flatnonzero(classes == 3)[0]) + 1
    assert held_count[single] == 0
    others = [s for s in range(1, classes.size + 1) if s != single]
    assert all(held_count[s] <= 1 for s in others)
    if n_folds == 2:  # two strokes of class 2 and three of class 1: each held out once
        assert all(held_count[s] == 1 for s in others)


def test_folds_need_two_strokes():
    lab = np.zeros((20, 20), np.uint8)
    lab[2, 2:10], lab[15, 2:10] = 1, 2
    with pytest.raises(ValueError, match="two separate strokes"):
        stroke_folds(lab, 2)
    with pytest.raises(ValueError):
        stroke_folds(_strokes(), 1)


def test_folds_are_seeded():
    lab = _strokes()
    a = [f.strokes for f in stroke_folds(lab, 2, seed=0)]
    assert a == [f.strokes for f in stroke_folds(lab, 2, seed=0)]


def test_boundary_and_agreement():
    ctx = np.zeros((30, 30), np.uint8)
    ctx[10, 0:30] = 1
    ctx[14, 0:15] = 2   # painted both sides near x < 15
    held = np.zeros_like(ctx)
    held[10] = ctx[10]
    border = boundary_mask(held, ctx, radius=5)
    assert border[10, :15].all() and not border[10, 22:].any()
    pred = np.full(ctx.shape, 1, np.uint8)
    pred[10, :5] = 2
    a = agreement(pred, held)
    assert a["pixels"] == 30 and a["accuracy"] == pytest.approx(25 / 30)
    assert a["per_class"] == {1: pytest.approx(25 / 30)}
    b = agreement(pred, held, mask=border)
    assert b["pixels"] == int(border.sum())
    assert agreement(pred, np.zeros_like(held))["balanced"] is None


def test_evaluate_decoder_and_pick_best(two_halves_task):
    from napari_unet_studio.core.compare import evaluate_decoder, pick_best

    image, lab, mc, tc = two_halves_task
    row, model = evaluate_decoder([(image, lab)], "bilinear", model_config=mc,
                                  train_config=tc, threads=1)
    assert row["folds"] == 2 and row["heldout_pixels"] == int((lab > 0).sum())
    assert row["heldout"] > 0.9  # an easy image: held-out strokes are right
    assert row["parameters"] == sum(int(t.numel()) for t in model.state_dict.values())
    assert model.record["steps"] == 20 and model.config.decoder == "bilinear"
    import threading

    stop = threading.Event()
    stop.set()
    cancelled, none = evaluate_decoder([(image, lab)], "nearest", model_config=mc,
                                       train_config=tc, threads=1, stop=stop)
    assert cancelled["cancelled"] and none is None
    worse = {**row, "decoder": "nearest", "heldout": row["heldout"] - 0.1}
    assert pick_best([worse, row, cancelled]) == "bilinear"
    assert pick_best([cancelled]) is None
