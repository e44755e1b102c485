"""Tests of the pairwise (local CRF) loss and test-time augmentation in core/refine.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet_studio.core.refine import (
    dihedral_transforms,
    neighbour_scale,
    pairwise_affinity_loss,
    tta_probabilities,
)


def _step_image(h: int = 16, w: int = 16, edge: int = 8) -> torch.Tensor:
    img = torch.zeros(1, 1, h, w)
    img[..., edge:] = 1.0
    return img


def _probs_split_at(column: int, h: int = 16, w: int = 16) -> torch.Tensor:
    p = torch.zeros(1, 2, h, w)
    p[:, 0, :, :column] = 1.0
    p[:, 1, :, column:] = 1.0
    return p


def test_neighbour_scale_matches_noise_level():
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.1, (1, 128, 128)).astype(np.float32)
    # |a - b| of two N(0, s^2) pixels is half-normal with scale s*sqrt(2): median 0.954 s
    assert neighbour_scale(noise) == pytest.approx(0.954 * 0.1, rel=0.05)
    assert neighbour_scale(np.zeros((1, 8, 8), np.float32)) == pytest.approx(1e-3)
    assert neighbour_scale(np.zeros((8, 8), np.float32)) == pytest.approx(1e-3)  # 2D ok
    # channels add up like a Euclidean distance
    two = np.concatenate([noise, noise])
    assert neighbour_scale(two) == pytest.approx(np.sqrt(2) * neighbour_scale(noise), rel=1e-4)


def test_pairwise_loss_is_zero_for_one_class_everywhere():
    probs = torch.zeros(2, 3, 12, 12)
    probs[:, 1] = 1.0
    img = torch.rand(2, 1, 12, 12)
    assert float(pairwise_affinity_loss(probs, img, sigma=0.1)) == pytest.approx(0.0, abs=1e-7)


def test_pairwise_loss_prefers_the_boundary_on_the_image_edge():
    img = _step_image()
    on_edge = pairwise_affinity_loss(_probs_split_at(8), img, sigma=0.1)
    off_edge = pairwise_affinity_loss(_probs_split_at(5), img, sigma=0.1)
    assert float(on_edge) < 1e-6  # cut where the image jumps by 10 sigma: free
    assert float(off_edge) > 0.01  # cut through a uniform region: costly


def test_pairwise_loss_by_hand_one_offset():
    # 1 x 3 image, one offset: pairs (0,1) and (1,2) horizontally; no vertical/diagonal pairs
    img = torch.tensor([[[[0.0, 0.0, 1.0]]]])
    probs = torch.tensor([[[[1.0, 0.5, 0.0]], [[0.0, 0.5, 1.0]]]])
    sigma = 0.5
    w01, w12 = 1.0, float(np.exp(-1.0 / (2 * sigma**2)))
    cut01 = 1 - (1.0 * 0.5 + 0.0 * 0.5)
    cut12 = 1 - (0.5 * 0.0 + 0.5 * 1.0)
    expected = (w01 * cut01 + w12 * cut12) / 2  # mean over the horizontal pairs
    # the other three directions have no pairs in a 1-row image and are skipped
    got = pairwise_affinity_loss(probs, img, sigma=sigma, offsets=(1,))
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_pairwise_loss_gradient_and_labels_mask():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 10, 10, requires_grad=True)
    img = torch.rand(2, 1, 10, 10)
    loss = pairwise_affinity_loss(logits.softmax(1), img, sigma=0.2)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert float(logits.grad.abs().sum()) > 0
    # with every pixel painted, no pair counts
    painted = torch.ones(2, 10, 10, dtype=torch.long)
    masked = pairwise_affinity_loss(logits.softmax(1), img, sigma=0.2, labels=painted)
    assert float(masked.detach()) == 0.0
    partly = painted.clone()
    partly[:, :5] = 0
    assert float(pairwise_affinity_loss(logits.softmax(1), img, 0.2, labels=partly).detach()) > 0


def test_pairwise_loss_rejects_bad_input():
    with pytest.raises(ValueError):
        pairwise_affinity_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), sigma=0.1)
    with pytest.raises(ValueError):
        pairwise_affinity_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4), sigma=0.0)


def test_dihedral_transforms_are_distinct():
    for n in (1, 2, 4, 8):
        t = dihedral_transforms(n)
        assert len(t) == n == len(set(t))
    with pytest.raises(ValueError):
        dihedral_transforms(3)


def _pixelwise(img: np.ndarray) -> np.ndarray:
    """An equivariant 'model': probabilities from each pixel's own value."""
    v = img if img.ndim == 2 else img.mean(-1)
    p1 = 1.0 / (1.0 + np.exp(-(v - 0.5) * 8))
    return np.stack([1 - p1, p1]).astype(np.float32)


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_tta_of_an_equivariant_model_changes_nothing(n):
    rng = np.random.default_rng(1)
    img = rng.random((12, 20)).astype(np.float32)  # not square: rotations swap axes
    out = tta_probabilities(_pixelwise, img, n)
    assert out.shape == (2, 12, 20)
    np.testing.assert_allclose(out, _pixelwise(img), atol=1e-6)
    rgb = rng.random((12, 20, 3)).astype(np.float32)
    np.testing.assert_allclose(tta_probabilities(_pixelwise, rgb, n, channel_last=True),
                               _pixelwise(rgb), atol=1e-6)


def test_tta_averages_a_position_biased_model():
    def biased(img: np.ndarray) -> np.ndarray:  # class 2 on the left half, whatever the image
        h, w = img.shape[:2]
        p = np.zeros((2, h, w), np.float32)
        p[1, :, : w // 2] = 1.0
        p[0, :, w // 2:] = 1.0
        return p

    img = np.zeros((8, 8), np.float32)
    np.testing.assert_allclose(tta_probabilities(biased, img, 2), 0.5)  # flip averages out
    out = tta_probabilities(biased, img, 8)
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-6)
    with pytest.raises(ValueError):
        tta_probabilities(biased, np.zeros((2, 8, 8)), 8)  # a stack is not one image
