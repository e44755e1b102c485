"""Losses: weighted cross-entropy + soft Dice over painted pixels, entropy over unpainted ones.

Labels use 0 for "not painted" and 1..K for classes (class ``k`` is logit channel
``k - 1``). Unpainted pixels contribute nothing to the cross-entropy and Dice terms;
the optional entropy term (:func:`unlabeled_entropy`, ``TrainConfig.entropy_weight``)
asks only that the prediction be sure there, never for a class.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["masked_cross_entropy", "masked_soft_dice", "unlabeled_entropy", "entropy_weight_at",
           "masked_loss"]


def masked_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Class-weighted cross-entropy averaged over labeled pixels.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, K, *spatial)`` raw scores.
    labels : torch.Tensor
        ``(N, *spatial)`` integers, 0 = ignore, 1..K = class.
    weight : torch.Tensor, optional
        ``(K,)`` class weights.

    Returns
    -------
    torch.Tensor
        Scalar; 0 (still attached to the graph) if no pixel is labeled.
    """
    target = labels.long() - 1  # unlabeled -> -1 (ignored)
    if not bool((target >= 0).any()):
        return logits.sum() * 0.0
    if weight is not None:
        weight = weight.to(device=logits.device, dtype=torch.float32)
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=-1)


def masked_soft_dice(logits: torch.Tensor, labels: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - mean soft Dice`` over the classes painted in this batch, labeled pixels only.

    Returns
    -------
    torch.Tensor
        Scalar in ``[0, 1]``; 0 (attached to the graph) if no pixel is labeled.
    """
    k = logits.shape[1]
    mask = labels > 0
    if not bool(mask.any()):
        return logits.sum() * 0.0
    probs = torch.softmax(logits.float(), dim=1)
    target = (labels.long() - 1).clamp(min=0)
    onehot = F.one_hot(target, k).movedim(-1, 1).float()
    m = mask.unsqueeze(1).float()
    dims = [0, *range(2, logits.ndim)]
    inter = (probs * onehot * m).sum(dims)
    denom = (probs * m).sum(dims) + (onehot * m).sum(dims)
    present = (onehot * m).sum(dims) > 0
    dice = (2.0 * inter + eps) / (denom + eps)
    return 1.0 - dice[present].mean()


def unlabeled_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean prediction entropy (nats, divided by ``log K``) over the unpainted pixels.

    Minimising it moves the decision boundaries away from dense regions of the image
    into the gaps between strokes where the image itself changes (entropy minimisation,
    a semi-supervised regulariser). 0 (attached to the graph) if every pixel is painted.
    """
    mask = labels == 0
    if not bool(mask.any()):
        return logits.sum() * 0.0
    logp = torch.log_softmax(logits.float(), dim=1)
    ent = -(logp.exp() * logp).sum(1)[mask].mean()
    k = int(logits.shape[1])
    return ent / math.log(k) if k > 1 else ent


def entropy_weight_at(frac: float, weight: float, ramp: float) -> float:
    """Weight of the entropy term at fraction ``frac`` (0-1) of the run.

    ``ramp`` (``TrainConfig.entropy_ramp``) is the fraction of the run over which the
    term comes in: 0 over its first half, then linear up to ``weight`` at ``ramp``,
    ``weight`` afterwards. ``ramp`` 0 gives ``weight`` from the first step.
    """
    if ramp <= 0.0 or frac >= ramp:
        return float(weight)
    start = 0.5 * ramp
    if frac <= start:
        return 0.0
    return float(weight) * (frac - start) / (ramp - start)


def masked_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None = None,
    dice_weight: float = 0.5,
    entropy_weight: float = 0.0,
) -> torch.Tensor:
    """``masked_cross_entropy + dice_weight * masked_soft_dice
    + entropy_weight * unlabeled_entropy``."""
    loss = masked_cross_entropy(logits, labels, weight)
    if dice_weight:
        loss = loss + dice_weight * masked_soft_dice(logits, labels)
    if entropy_weight:
        loss = loss + float(entropy_weight) * unlabeled_entropy(logits, labels)
    return loss
