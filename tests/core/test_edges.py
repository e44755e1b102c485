"""Edge snapping: each object's contour moves to the image's edge, each object on its
own, only where it applies, and prediction applies it to the labels only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_unet_studio.core.config import ModelConfig, TileConfig
from napari_unet_studio.core.edges import (
    THRESHOLDS,
    applies,
    choose_per_object,
    gradient,
    snap,
    snap_labels,
)
from napari_unet_studio.core.infer import iter_predict_module
from napari_unet_studio.core.model import build_model
from napari_unet_studio.core.progress import run_to_end

NORM = {"method": "percentile", "low": 1.0, "high": 99.8}


def _discs(centres: list[tuple[int, int]], radius: float, offsets: list[float],
           shape: tuple[int, int] = (96, 160)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blurred bright discs of ``radius`` (image, truth) and an object probability whose
    0.5 contour lies ``offset`` pixels outside (positive) or inside each disc's edge."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, bool)
    logit = np.full(shape, -20.0)
    for (cy, cx), off in zip(centres, offsets, strict=True):
        r = np.hypot(yy - cy, xx - cx)
        truth |= r < radius
        logit = np.maximum(logit, (radius + off - r) / 1.5)
    image = ndi.gaussian_filter(truth.astype(np.float32) * 100 + 10, 1.2)
    return image, truth, (1 / (1 + np.exp(-logit))).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_gradient_peaks_on_the_edge_and_is_zero_on_a_flat_image():
    image, truth, _ = _discs([(48, 48)], 20, [0])
    g = gradient(image)
    edge = truth & ~ndi.binary_erosion(truth)
    assert g[edge].mean() > 5 * g[ndi.binary_erosion(truth, iterations=6)].mean()
    assert not gradient(np.full((20, 30), 7.0)).any()
    rgb = np.stack([image, image, 0 * image], -1)  # channels: the sum of their magnitudes
    np.testing.assert_allclose(gradient(rgb), 2 * g, rtol=1e-5)


def test_a_contour_off_the_edge_moves_onto_it():
    image, truth, prob = _discs([(48, 48)], 20, [3])
    plain = prob > 0.5
    snapped = snap(image, prob)
    assert _iou(snapped, truth) > _iou(plain, truth) + 0.05
    # it is one of the candidate masks: the 0.7 threshold, the nearest to the edge
    np.testing.assert_array_equal(snapped, prob > max(THRESHOLDS))


def test_each_object_chooses_its_own_threshold():
    image, truth, prob = _discs([(48, 40), (48, 120)], 18, [2.5, -2.5])
    snapped = snap(image, prob)
    left = np.zeros_like(truth)
    left[:, :80] = True
    assert snapped[left].sum() < (prob > 0.5)[left].sum()  # the left one shrank
    assert snapped[~left].sum() > (prob > 0.5)[~left].sum()  # the right one grew
    for side in (left, ~left):
        assert _iou(snapped & side, truth & side) > _iou((prob > 0.5) & side, truth & side)


def test_without_an_edge_the_plain_threshold_stays():
    _, _, prob = _discs([(48, 48), (48, 110)], 15, [2, -1])
    np.testing.assert_array_equal(snap(np.full(prob.shape, 3.0), prob), prob > 0.5)
    image, _, _ = _discs([(48, 48)], 15, [0])
    np.testing.assert_array_equal(snap(image, np.zeros_like(image)), np.zeros(image.shape, bool))


def test_choose_per_object_margin_and_regions():
    grad = np.ones((10, 10), np.float32)
    grad[2, 2:8] = 10.0
    regions = np.zeros((10, 10), int)
    regions[1:9, 1:9] = 1
    small = np.zeros((10, 10), bool)
    small[4:6, 4:6] = True
    large = np.zeros((10, 10), bool)
    large[2:8, 2:8] = True  # its contour runs along the strong row
    np.testing.assert_array_equal(choose_per_object(grad, regions, [small, large], 0), large)
    # the large mask's contour is far stronger: only an absurd margin keeps the base
    np.testing.assert_array_equal(
        choose_per_object(grad, regions, [small, large], 0, margin=1e9), small)
    # nothing outside the regions is kept
    assert not choose_per_object(grad, np.zeros_like(regions), [small, large], 0).any()


def test_snap_labels_takes_the_minority_class_as_the_objects():
    image, truth, prob = _discs([(48, 48)], 20, [3])
    probs = np.stack([1 - prob, prob])
    labels = snap_labels(image, probs)
    np.testing.assert_array_equal(labels == 2, snap(image, prob))
    # the same prediction with the classes swapped gives the same objects, as class 1
    np.testing.assert_array_equal(snap_labels(image, probs[::-1]) == 1, labels == 2)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {1, 2}
    with pytest.raises(ValueError, match="2, Y, X"):
        snap_labels(image, np.stack([probs[0], probs[1], probs[1]]))
    with pytest.raises(ValueError, match="0.5"):
        snap(image, prob, thresholds=(0.4, 0.6))


def test_when_it_applies():
    assert applies("auto", 1, 2) and not applies("auto", 3, 2) and not applies("auto", 1, 3)
    assert applies("on", 3, 2) and not applies("on", 1, 3) and not applies("off", 1, 2)
    assert not applies("on", 1, 2, dims=3) and not applies("auto", 1, 2, dims=3)
    with pytest.raises(ValueError, match="edges"):
        applies("always", 1, 2)
    with pytest.raises(ValueError, match="edges"):
        TileConfig(edges="always")
    assert TileConfig().edges == "auto"


def _predict(cfg: ModelConfig, image: np.ndarray, mode: str) -> tuple:
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    res = run_to_end(iter_predict_module(
        net, cfg, NORM, image,
        tile=TileConfig(tile=32, overlap=0.25, superpixels="off", edges=mode),
        probabilities=True, device=torch.device("cpu")))
    return res.labels, res.probabilities


def test_prediction_snaps_gray_two_class_labels_by_default_and_keeps_probabilities(
        monkeypatch):
    image, _, _ = _discs([(30, 30), (30, 80)], 12, [0, 0], shape=(64, 112))
    gray = ModelConfig(in_channels=1, num_classes=2, depth=1, width=4)
    l_off, p_off = _predict(gray, image, "off")
    l_auto, p_auto = _predict(gray, image, "auto")
    np.testing.assert_array_equal(p_auto, p_off)
    np.testing.assert_array_equal(l_off, p_off.argmax(0) + 1)
    np.testing.assert_array_equal(l_auto, snap_labels(image, p_off))
    # a random network may predict one class everywhere, where snapping changes nothing:
    # see that prediction hands the whole plane and its probabilities over, and uses
    # what comes back, only where snapping applies
    calls = []

    def fake(plane, probs):
        calls.append((np.array(plane), np.array(probs)))
        return np.full(plane.shape[:2], 2, np.uint8)

    monkeypatch.setattr("napari_unet_studio.core.infer.snap_labels", fake)
    labels, _ = _predict(gray, image, "auto")
    assert (labels == 2).all() and len(calls) == 1
    np.testing.assert_array_equal(calls[0][0], image)
    np.testing.assert_array_equal(calls[0][1], p_off)
    np.testing.assert_array_equal(_predict(gray, image, "off")[0], l_off)
    three = ModelConfig(in_channels=1, num_classes=3, depth=1, width=4)
    rgb = ModelConfig(in_channels=3, num_classes=2, depth=1, width=4)
    _predict(three, image, "on")  # three classes: never, even when asked
    _predict(rgb, np.stack([image] * 3, -1), "auto")  # colour: only when asked
    assert len(calls) == 1
    _predict(rgb, np.stack([image] * 3, -1), "on")
    assert len(calls) == 2 and calls[1][0].shape == (*image.shape, 3)


def test_each_plane_of_a_stack_is_snapped_on_its_own():
    a, _, _ = _discs([(30, 30)], 12, [0], shape=(64, 64))
    b, _, _ = _discs([(20, 40), (44, 20)], 9, [0, 0], shape=(64, 64))
    stack = np.stack([a, b])
    gray = ModelConfig(in_channels=1, num_classes=2, depth=1, width=4)
    _, p_off = _predict(gray, stack, "off")
    labels, _ = _predict(gray, stack, "auto")
    for z in range(2):
        np.testing.assert_array_equal(labels[z], snap_labels(stack[z], p_off[:, z]))


def test_a_plane_above_the_limit_is_not_snapped_and_says_so(monkeypatch):
    calls = []
    monkeypatch.setattr("napari_unet_studio.core.infer.snap_labels",
                        lambda plane, probs: calls.append(1) or probs.argmax(0) + 1)
    monkeypatch.setattr("napari_unet_studio.core.infer.EDGES_MAX_PIXELS", 64 * 64 - 1)
    gray = ModelConfig(in_channels=1, num_classes=2, depth=1, width=4)
    image, _, _ = _discs([(30, 30)], 12, [0], shape=(64, 64))
    with pytest.warns(UserWarning, match="Edge snapping skipped"):
        labels, probs = _predict(gray, image, "auto")
    assert not calls
    np.testing.assert_array_equal(labels, probs.argmax(0) + 1)


def test_regions_grow_into_the_background_only():
    from napari_unet_studio.core.edges import regions_of

    mask = np.zeros((20, 30), bool)
    mask[5:10, 5:10] = True
    mask[5:10, 12:16] = True  # 2 px apart: both grow into the gap, neither into the other
    regions = regions_of(mask, 3)
    lab, _ = ndi.label(mask)
    np.testing.assert_array_equal(regions[mask], lab[mask])
    assert regions[7, 2] == lab[7, 7] and regions[7, 1] == 0  # 3 px out, not 4
    assert regions[7, 18] == lab[7, 13] and regions[2, 7] == lab[7, 7]
    assert regions[1, 1] == 0  # a corner further than 3 px (Euclidean)


def test_gradient_is_the_sobel_magnitude_of_the_smoothed_image():
    rng = np.random.default_rng(0)
    img = (rng.random((70, 91)) * 100).astype(np.float32)
    g = ndi.gaussian_filter(img, 1.0)
    np.testing.assert_allclose(gradient(img), np.hypot(ndi.sobel(g, 0), ndi.sobel(g, 1)),
                               rtol=1e-6, atol=1e-5)
    rgb = rng.random((30, 40, 3)).astype(np.float32)
    ref = sum(np.hypot(ndi.sobel(ndi.gaussian_filter(rgb[..., c], 1.0), 0),
                       ndi.sobel(ndi.gaussian_filter(rgb[..., c], 1.0), 1)) for c in range(3))
    np.testing.assert_allclose(gradient(rgb), ref, rtol=1e-6, atol=1e-6)
