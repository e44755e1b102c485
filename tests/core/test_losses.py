"""Losses ignore unpainted pixels, weight classes, and behave at the extremes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from napari_unet_studio.core.losses import masked_cross_entropy, masked_loss, masked_soft_dice


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
