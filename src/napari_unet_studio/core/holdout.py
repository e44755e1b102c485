"""Held-out strokes: pick the snapshot on strokes the network did not train on.

Why. The training loss on a few strokes keeps falling while the network learns the
strokes' *shape* rather than the classes (docs/benchmarks.md: more steps can make the
mask worse). Holding out whole strokes (connected components of one class; a stroke is
never split between the two sides) gives a loss that measures how well the network
generalises to pixels it never saw, and the snapshot with the lowest held-out loss is
kept instead of the one with the lowest training loss.

Pure numpy/torch (strokes found by :func:`.folds.label_strokes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .folds import label_strokes

__all__ = ["components", "split_strokes", "split_pairs", "HeldOut", "holdout_split", "held_out",
           "EVERY"]


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a 2D boolean mask (stacks: per slice).

    The one stroke labeller of the package, :func:`.folds.label_strokes`, on the mask.

    Returns ``(labels, n)``: ``labels`` int64 of the mask's shape, 0 outside, 1..n inside
    (numbered in raster order of their first pixel).
    """
    strokes, classes = label_strokes(np.asarray(mask, bool).astype(np.uint8))
    return strokes.astype(np.int64), int(classes.size)


def split_strokes(labels: np.ndarray, fraction: float, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Split painted labels into training and held-out strokes, whole strokes only.

    For every class with at least 2 strokes (connected components of that label
    value), strokes are moved to the held-out side in random order while the held-out
    pixels stay under ``fraction`` of the class's pixels; at least one stroke of every
    class stays for training. Dense labels (one component covering the class) stay
    whole on the training side.

    Returns
    -------
    train, held : numpy.ndarray
        Labels of the same shape and dtype; a pixel is painted in at most one of them.
    """
    lab = np.asarray(labels)
    train = lab.copy()
    held = np.zeros_like(lab)
    for k in np.unique(lab[lab > 0]):
        comp, n = components(lab == k)
        if n < 2:
            continue
        sizes = np.bincount(comp.ravel(), minlength=n + 1)[1:]
        budget = fraction * sizes.sum()
        taken = 0
        chosen = []
        for c in rng.permutation(n):
            if len(chosen) == n - 1:
                break
            if taken + sizes[c] <= budget:
                chosen.append(c + 1)
                taken += sizes[c]
        if chosen:
            sel = np.isin(comp, chosen)
            held[sel] = k
            train[sel] = 0
    return train, held


def split_pairs(pairs: Sequence[tuple[Any, Any]], fraction: float, seed: int
                ) -> tuple[list[tuple[Any, np.ndarray]], list[tuple[Any, np.ndarray]]]:
    """:func:`split_strokes` on every (image, labels) pair; held-out pairs with no
    painted pixel are dropped. Stacks ``(Z, Y, X)`` are split per slice."""
    rng = np.random.default_rng([int(seed), 3])
    train, held = [], []
    for image, labels in pairs:
        lab = np.asarray(labels)
        if lab.ndim == 3:
            parts = [split_strokes(lab[z], fraction, rng) for z in range(lab.shape[0])]
            t = np.stack([p[0] for p in parts])
            h = np.stack([p[1] for p in parts])
        else:
            t, h = split_strokes(lab, fraction, rng)
        train.append((image, t))
        if h.any():
            held.append((image, h))
    return train, held


class HeldOut:
    """Fixed batches of patches around held-out strokes and their loss.

    Parameters
    ----------
    data : TrainingData
        The held-out strokes (built like the training data, same normalisation).
    patch_size, batch_size : int
        Patch edge and patches per batch.
    batches : int
        Number of batches (drawn once, seeded, without augmentation).
    seed : int
        Seed of the draw.
    """

    def __init__(self, data, patch_size: int, batch_size: int, batches: int, seed: int):
        from .data import PatchSampler

        sampler = PatchSampler(data, patch_size, augment=False, label_fraction=1.0)
        rng = np.random.default_rng([int(seed), 4])
        self.batches = [sampler.draw(batch_size, rng) for _ in range(batches)]

    def loss(self, model: torch.nn.Module, weights: torch.Tensor, device: torch.device
             ) -> float:
        """Class-weighted cross-entropy on the held-out pixels, in eval mode."""
        from .losses import masked_cross_entropy

        modes = [m.training for m in model.modules()]
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for x, y in self.batches:
                yb = torch.from_numpy(y).to(device)
                n = int((yb > 0).sum())
                if not n:
                    continue
                logits = model(torch.from_numpy(x).to(device))
                total += float(masked_cross_entropy(logits.float(), yb, weights)) * n
                count += n
        for m, mode in zip(model.modules(), modes, strict=True):
            m.training = mode  # frozen batch norm stays frozen
        return total / count if count else float("nan")

    def score(self, model: torch.nn.Module, weights: torch.Tensor, device: torch.device,
              step: int, total: int | None) -> float | None:
        """The held-out loss every :data:`EVERY` steps and at the last step, else ``None``
        (the snapshot is then not reconsidered)."""
        if step % EVERY and (total is None or step < int(total)):
            return None
        return self.loss(model, weights, device)


EVERY = 10  # steps between two held-out evaluations


def holdout_split(pairs: Sequence[tuple[Any, Any]], fraction: float, seed: int, dims: int
                  ) -> tuple[Sequence[tuple[Any, Any]], list[tuple[Any, np.ndarray]]]:
    """``(training pairs, held-out pairs)`` for ``TrainConfig.holdout`` (2D models only;
    0 or 3D: the pairs unchanged and nothing held out)."""
    if not fraction or int(dims) != 2:
        return pairs, []
    if isinstance(pairs, tuple) and len(pairs) == 2 and not isinstance(pairs[0], tuple):
        pairs = [pairs]
    return split_pairs(pairs, float(fraction), seed)


def held_out(held: list, normalization: dict, patch_size: int, batch_size: int, seed: int
             ) -> HeldOut | None:
    """The :class:`HeldOut` batches of the held-out pairs (``None`` when there are none,
    or when they hold fewer than 2 classes)."""
    if not held:
        return None
    from .data import TrainingData
    from .errors import DataError

    try:
        data = TrainingData(held, normalization, patch_size)
    except DataError:
        return None
    return HeldOut(data, patch_size, batch_size, batches=2, seed=seed)
