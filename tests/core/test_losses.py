"""Losses ignore unpainted pixels (but for the optional entropy term), weight classes, and
behave at the extremes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from napari_unet_studio.core.config import TrainConfig
from napari_unet_studio.core.losses import (
    entropy_weight_at,
    masked_cross_entropy,
    masked_loss,
    masked_soft_dice,
    unlabeled_entropy,
)


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 12, 10, generator=g, requires_grad=True)
    labels = torch.zeros(2, 12, 10, dtype=torch.long)
    labels[0, 2, :] = 1
    labels[1, 5:7, 3] = 2
    labels[1, 9, 4:8] = 3
    return logits, labels


def test_unlabeled_pixels_get_exactly_zero_gradient():
    logits, labels = _batch()
    masked_loss(logits, labels, torch.tensor([1.0, 2.0, 0.5]), dice_weight=1.0).backward()
    grad = logits.grad.abs().sum(1)
    assert torch.all(grad[labels == 0] == 0)
    assert torch.all(grad[labels > 0] > 0)


def test_changing_unlabeled_logits_does_not_change_the_loss():
    logits, labels = _batch()
    a = masked_loss(logits, labels)
    other = logits.detach().clone()
    other[labels.unsqueeze(1).expand_as(other) == 0] = 123.0
    assert torch.allclose(a, masked_loss(other, labels))


def test_cross_entropy_matches_weighted_reference():
    logits, labels = _batch()
    w = torch.tensor([0.5, 1.0, 3.0])
    mask = labels > 0
    logp = F.log_softmax(logits, 1).permute(0, 2, 3, 1)[mask]
    target = labels[mask] - 1
    ref = -(w[target] * logp[torch.arange(len(target)), target]).sum() / w[target].sum()
    assert torch.allclose(masked_cross_entropy(logits, labels, w), ref, atol=1e-6)


def test_nothing_labeled_gives_zero_but_differentiable_loss():
    logits = torch.randn(1, 2, 8, 8, requires_grad=True)
    loss = masked_loss(logits, torch.zeros(1, 8, 8, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_dice_is_zero_for_perfect_and_near_one_for_wrong_predictions():
    labels = torch.zeros(1, 6, 6, dtype=torch.long)
    labels[0, :2] = 1
    labels[0, 4:] = 2
    target = (labels - 1).clamp(min=0)
    perfect = F.one_hot(target, 2).permute(0, 3, 1, 2).float() * 50
    wrong = F.one_hot(1 - target, 2).permute(0, 3, 1, 2).float() * 50
    assert masked_soft_dice(perfect, labels).item() < 0.05
    assert masked_soft_dice(wrong, labels).item() > 0.9
    assert masked_loss(perfect, labels).item() < 0.05


def test_rare_class_weight_increases_its_gradient():
    logits, labels = _batch()
    masked_cross_entropy(logits, labels, torch.tensor([1.0, 1.0, 1.0])).backward()
    plain = logits.grad[1].abs().sum().item()
    logits.grad = None
    masked_cross_entropy(logits, labels, torch.tensor([1.0, 1.0, 5.0])).backward()
    rare_px = labels[1] == 3
    assert logits.grad[1][:, rare_px].abs().sum() > 0
    assert logits.grad[1].abs().sum().item() != plain


def test_unlabeled_entropy_matches_reference_and_ignores_painted_pixels():
    logits, labels = _batch(3)
    p = torch.softmax(logits.detach(), 1)
    ent = -(p * p.log()).sum(1) / math.log(3)
    expected = ent[labels == 0].mean()
    got = unlabeled_entropy(logits, labels)
    assert torch.allclose(got, expected, atol=1e-6)
    got.backward()
    grad = logits.grad.abs().sum(1)
    assert torch.all(grad[labels > 0] == 0)  # painted pixels: the cross-entropy's job
    assert torch.all(grad[labels == 0] > 0)


def test_unlabeled_entropy_extremes():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    assert torch.allclose(unlabeled_entropy(torch.zeros(1, 3, 4, 4), labels), torch.tensor(1.0))
    sure = torch.zeros(1, 3, 4, 4)
    sure[:, 1] = 50.0
    assert float(unlabeled_entropy(sure, labels)) < 1e-6
    everything = torch.ones(1, 4, 4, dtype=torch.long)  # all painted: nothing to regularise
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    zero = unlabeled_entropy(x, everything)
    assert float(zero.detach()) == 0.0 and zero.requires_grad


def test_entropy_weight_adds_the_term_and_a_step_makes_unpainted_pixels_surer():
    logits, labels = _batch(4)
    base = masked_loss(logits, labels)
    with_ent = masked_loss(logits, labels, entropy_weight=0.7)
    assert torch.allclose(with_ent, base + 0.7 * unlabeled_entropy(logits, labels))
    x = logits.detach().clone().requires_grad_(True)
    unlabeled_entropy(x, labels).backward()
    stepped = x.detach() - 0.5 * x.grad
    assert float(unlabeled_entropy(stepped, labels)) < float(unlabeled_entropy(x, labels).detach())


def test_train_config_rejects_a_negative_entropy_weight():
    with pytest.raises(ValueError, match="entropy_weight"):
        TrainConfig(entropy_weight=-0.1)


def test_entropy_ramp_is_zero_then_linear_then_the_full_weight():
    assert [entropy_weight_at(f, 2.0, 0.0) for f in (0.0, 0.5, 1.0)] == [2.0, 2.0, 2.0]
    got = [entropy_weight_at(f, 2.0, 0.4) for f in (0.0, 0.1, 0.2, 0.3, 0.4, 0.7, 1.0)]
    assert got == pytest.approx([0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0])
    assert entropy_weight_at(0.5, 0.0, 0.4) == 0.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="entropy_ramp"):
            TrainConfig(entropy_ramp=bad)
