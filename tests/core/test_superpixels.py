"""The superpixel vote: its arithmetic, that superpixels follow colour edges, that it
removes scattered wrong pixels, when it applies, and that prediction applies it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet_studio.core.config import ModelConfig, TileConfig, preview_tile
from napari_unet_studio.core.infer import iter_predict_module
from napari_unet_studio.core.model import build_model
from napari_unet_studio.core.progress import run_to_end
from napari_unet_studio.core.superpixels import applies, segments, vote, vote_multiscale

NORM = {"method": "percentile", "low": 1.0, "high": 99.8}


def _two_colours(seed: int = 0, shape: tuple[int, int] = (60, 80)) -> np.ndarray:
    """A red left half and a blue right half (uint8 RGB), with a little noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((*shape, 3), np.float32)
    img[:, : shape[1] // 2] = (200, 40, 40)
    img[:, shape[1] // 2:] = (40, 40, 200)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def test_vote_is_the_mean_over_each_superpixel_and_mix_blends():
    rng = np.random.default_rng(1)
    prob = rng.random((3, 4, 5)).astype(np.float32)
    prob /= prob.sum(0)
    seg = rng.integers(0, 4, (4, 5))
    full = vote(prob, seg)
    for s in range(4):
        inside = seg == s
        for c in range(3):
            np.testing.assert_allclose(full[c][inside], prob[c][inside].mean(), rtol=1e-6)
    np.testing.assert_allclose(full.sum(0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(vote(prob, seg, 0.0), prob)
    np.testing.assert_allclose(vote(prob, seg, 0.25), 0.75 * prob + 0.25 * full, rtol=1e-6)


@pytest.mark.parametrize("area", [50, 100, 200])
def test_superpixels_of_a_colour_photo_follow_its_colour_edge(area):
    img = _two_colours()
    seg = segments(img, area)
    assert seg.shape == img.shape[:2]
    right = np.zeros(img.shape[:2], int)
    right[:, img.shape[1] // 2:] = 1
    # scikit-image merges fragments under half the mean size into a neighbour, which may
    # lie across the edge: nearly every pixel, not all, shares its superpixel's side
    majority = sum(max(np.count_nonzero(right[seg == s]), np.count_nonzero(seg == s)
                       - np.count_nonzero(right[seg == s])) for s in np.unique(seg))
    assert majority / seg.size > 0.97
    n = len(np.unique(seg))
    assert 0.5 * seg.size / area <= n <= 2 * seg.size / area


def test_gray_and_two_channel_planes_are_segmented_too():
    img = _two_colours()[..., 0].astype(np.uint16) * 40
    assert segments(img, 100).shape == img.shape
    assert segments(np.stack([img, img], -1), 100).shape == img.shape
    assert segments(img[..., None], 100).shape == img.shape


def test_the_vote_removes_scattered_wrong_pixels_inside_a_region():
    img = _two_colours(seed=2)
    truth = np.zeros(img.shape[:2], int)
    truth[:, img.shape[1] // 2:] = 1
    rng = np.random.default_rng(3)
    wrong = rng.random(truth.shape) < 0.25  # a quarter of the pixels lean the wrong way
    lean = np.where(wrong, 1 - truth, truth)
    prob = np.stack([np.where(lean == 0, 0.7, 0.3), np.where(lean == 1, 0.7, 0.3)]
                    ).astype(np.float32)
    assert (prob.argmax(0) != truth).mean() > 0.2
    voted = vote_multiscale(prob, img)
    np.testing.assert_allclose(voted.sum(0), 1.0, rtol=1e-5)
    assert (voted.argmax(0) != truth).mean() < 0.02


def test_when_it_applies():
    assert applies("auto", 3) and not applies("auto", 1) and not applies("auto", 2)
    assert applies("on", 1) and applies("on", 3) and not applies("off", 3)
    assert not applies("on", 3, dims=3) and not applies("auto", 3, dims=3)
    with pytest.raises(ValueError, match="superpixels"):
        applies("always", 3)
    with pytest.raises(ValueError, match="superpixels"):
        TileConfig(superpixels="always")
    assert TileConfig().superpixels == "auto"
    assert preview_tile((60, 80, 3), 3).superpixels == "off"  # live previews stay fast
    assert preview_tile((60, 80, 3), 3, superpixels="auto").superpixels == "auto"


def _predict(cfg: ModelConfig, image: np.ndarray, mode: str, **kw) -> tuple:
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    res = run_to_end(iter_predict_module(
        net, cfg, NORM, image, tile=TileConfig(tile=32, overlap=0.25, superpixels=mode),
        probabilities=True, device=torch.device("cpu"), **kw))
    return res.labels, res.probabilities


def test_prediction_votes_colour_images_by_default_and_not_gray_ones():
    img = _two_colours(seed=4)
    rgb = ModelConfig(in_channels=3, num_classes=3, depth=1, width=4)
    labels_off, probs_off = _predict(rgb, img, "off")
    labels_auto, probs_auto = _predict(rgb, img, "auto")
    expected = vote_multiscale(probs_off, img)
    np.testing.assert_allclose(probs_auto, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels_auto, expected.argmax(0) + 1)
    assert not np.allclose(probs_auto, probs_off, atol=1e-3)  # the vote changed something

    gray_img = img[..., 0]
    gray = ModelConfig(in_channels=1, num_classes=2, depth=1, width=4)
    l_off, p_off = _predict(gray, gray_img, "off")
    l_auto, p_auto = _predict(gray, gray_img, "auto")
    np.testing.assert_array_equal(p_auto, p_off)
    _, p_on = _predict(gray, gray_img, "on")
    np.testing.assert_allclose(p_on, vote_multiscale(p_off, gray_img), rtol=1e-5, atol=1e-6)


def test_each_plane_of_a_colour_stack_is_voted_on_its_own():
    stack = np.stack([_two_colours(seed=5), _two_colours(seed=6)[:, ::-1]])
    rgb = ModelConfig(in_channels=3, num_classes=2, depth=1, width=4)
    _, probs_off = _predict(rgb, stack, "off")
    _, probs_auto = _predict(rgb, stack, "auto")
    for z in range(2):
        np.testing.assert_allclose(probs_auto[:, z], vote_multiscale(probs_off[:, z], stack[z]),
                                   rtol=1e-5, atol=1e-6)
